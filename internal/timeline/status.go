package timeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/directory"
	"github.com/guestflow/guestflow/internal/textsafe"
	"github.com/guestflow/guestflow/internal/worker"
)

// Directory reads users from Entra ID; *graph.Client is one.
type Directory interface {
	GetUser(ctx context.Context, id string) (directory.User, error)
	FindUserByMail(ctx context.Context, address string) ([]directory.User, error)
}

// Invitation is what Entra ID says about the onboarded user.
type Invitation struct {
	UserID            string `json:"userId"`
	UserPrincipalName string `json:"userPrincipalName,omitempty"`
	// UserType is Guest, or Member for a person of the tenant.
	UserType string `json:"userType,omitempty"`
	// ExternalUserState is PendingAcceptance or Accepted for a guest.
	ExternalUserState string `json:"externalUserState,omitempty"`
}

// Options say how to report.
type Options struct {
	// JSON writes one JSON array of onboardings instead of text.
	JSON bool
	// Directory, when set, is asked for each onboarding's invitation
	// acceptance state.
	Directory Directory
	// DirectoryNote stands in for the acceptance state without a
	// Directory: how to get it.
	DirectoryNote string
	// Scan reads the whole event stream even when the index knows the
	// query: for messages the workers failed to index
	// (worker.Stats.IndexFailures), or to compare.
	Scan bool
}

// directoryTimeout bounds the Graph lookups, so that a credential chain
// probing for a managed identity does not hold the timeline.
const directoryTimeout = 15 * time.Second

// ErrNotFound is Status's error when nothing answers the query.
var ErrNotFound = errors.New("no onboarding")

// Status writes the timeline of every onboarding that answers query to w,
// and returns them. Finding none is an error.
func Status(ctx context.Context, js jetstream.JetStream, query string, o Options, w io.Writer) ([]Onboarding, error) {
	obs, err := load(ctx, js, query, o.Scan)
	if err != nil {
		return nil, err
	}
	if len(obs) == 0 {
		return nil, fmt.Errorf("%w of %q: no event in %s (it keeps events 30 days by default) and no dead letter in %s has that onboarding id or email address",
			ErrNotFound, query, worker.Stream, worker.DLQStream)
	}
	lookUp(ctx, o, obs)
	if o.JSON {
		b, err := json.MarshalIndent(obs, "", "  ")
		if err != nil {
			return nil, err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return obs, err
	}
	return obs, Write(w, obs)
}

// lookUp fills in each onboarding's invitation, or the note that says why
// it is missing.
func lookUp(ctx context.Context, o Options, obs []Onboarding) {
	if o.Directory == nil {
		for i := range obs {
			obs[i].InvitationNote = o.DirectoryNote
		}
		return
	}
	ctx, cancel := context.WithTimeout(ctx, directoryTimeout)
	defer cancel()
	for i := range obs {
		obs[i].Invitation, obs[i].InvitationNote = invitation(ctx, o.Directory, obs[i])
	}
}

// invitation reads the user the onboarding is about. It searches by mail
// first because that call selects externalUserState, which Graph leaves
// out of a plain GET /users/{id}; the user id the invite step found picks
// the right one when several users share the address.
func invitation(ctx context.Context, dir Directory, ob Onboarding) (*Invitation, string) {
	var u directory.User
	switch {
	case ob.Email != "":
		us, err := dir.FindUserByMail(ctx, ob.Email)
		if err != nil {
			return nil, "could not read it from Graph: " + err.Error()
		}
		if len(us) == 0 {
			return nil, "no user with this address in the directory yet"
		}
		u = us[0]
		for _, c := range us {
			if c.ID == ob.userID || ob.userID == "" && c.IsGuest() {
				u = c
				break
			}
		}
	case ob.userID != "":
		var err error
		if u, err = dir.GetUser(ctx, ob.userID); err != nil {
			return nil, "could not read it from Graph: " + err.Error()
		}
	default:
		return nil, "unknown: the onboarding has neither a user id nor an email address"
	}
	return &Invitation{UserID: u.ID, UserPrincipalName: u.UserPrincipalName, UserType: u.UserType,
		ExternalUserState: u.ExternalUserState}, ""
}

// Write writes the timelines for people. Every value from an event, a dead
// letter or Graph goes through textsafe.Escape: anyone who can publish a
// joined event can put terminal escapes in its fields.
func Write(w io.Writer, obs []Onboarding) error {
	for i, ob := range obs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "onboarding %s", safe(orDash(ob.ID)))
		if ob.Email != "" {
			fmt.Fprintf(w, ": %s", safe(ob.Email))
		}
		if ob.Instance != "" {
			fmt.Fprintf(w, ", instance %s", safe(ob.Instance))
		}
		fmt.Fprintln(w)
		if len(ob.Steps) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  STEP\tTIME\tAFTER\tATTEMPTS\tOUTCOME")
			start := ob.Steps[0].Time
			for _, e := range ob.Steps {
				attempts := "-"
				if e.Attempts > 0 {
					attempts = strconv.Itoa(e.Attempts)
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", safe(e.Step), e.Time.Format(time.RFC3339), after(e.Time.Sub(start)), attempts, safe(e.Outcome))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		if len(ob.DeadLetters) > 0 {
			fmt.Fprintf(w, "  dead letters in %s:\n", worker.DLQStream)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "    SEQ\tSTEP\tFAILED AT\tATTEMPTS\tREASON\tERROR")
			for _, d := range ob.DeadLetters {
				fmt.Fprintf(tw, "    %d\t%s\t%s\t%d\t%s\t%s\n", d.Seq, safe(d.Step), d.FailedAt.Format(time.RFC3339), d.Attempts, safe(d.Reason), safe(d.Error))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		if line := invitationLine(ob); line != "" {
			fmt.Fprintf(w, "  invitation: %s\n", safe(line))
		}
		fmt.Fprintf(w, "  → %s\n", safe(ob.State.Summary))
	}
	return nil
}

func invitationLine(ob Onboarding) string {
	inv := ob.Invitation
	switch {
	case inv == nil:
		return ob.InvitationNote
	case inv.UserType == "Member":
		return "none to accept: " + inv.UserPrincipalName + " is a member of the tenant"
	case inv.ExternalUserState == "Accepted":
		return "Accepted: the guest " + inv.UserPrincipalName + " has redeemed the invitation"
	case inv.ExternalUserState == "PendingAcceptance":
		return "PendingAcceptance: the guest " + inv.UserPrincipalName + " has not redeemed the invitation yet"
	case inv.ExternalUserState != "":
		return inv.ExternalUserState + " (" + inv.UserPrincipalName + ")"
	}
	return "Graph reports no acceptance state for " + inv.UserPrincipalName
}

// after is the time since the onboarding's first event, short.
func after(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return "+" + d.Round(time.Millisecond).String()
	case d < time.Minute:
		return "+" + d.Round(10*time.Millisecond).String()
	}
	return "+" + d.Round(time.Second).String()
}

// safe is textsafe.Escape, short for the many fields above.
func safe(s string) string { return textsafe.Escape(s) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
