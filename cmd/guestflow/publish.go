package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/provision"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

func newPublish(g *globals) *cobra.Command {
	var (
		j         events.Joined
		roles     string
		sendEmail bool
		file      string
		id        string
		source    string
		natsURL   natsFlag
	)
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Publish a joined event from flags or a JSON file",
		Long: `Publish io.guestflow.user.joined.v1 on guestflow.user.joined, as an HR system would.
The data comes from the flags or from --file (a JSON object with the joined data
fields: email, givenName, surname, usageLocation, instance, roles, license, message,
sendEmail, redirectUrl, displayName). It is validated before it is sent. The event id
is printed: it is the onboarding id that 'guestflow status' and dead letters show.

The event id is sent as Nats-Msg-Id. When the stream already holds an event with the
same id, published within its duplicate window (2 minutes), the broker keeps that one
and drops this one: publish says so, naming the id, and exits with status 4.

Exit status: 0 published; 4 a duplicate, nothing stored; 1 anything else (invalid
data, no NATS, no stream).`,
		Example: `  guestflow publish --email ana.silva@fabrikam.com --given-name Ana --surname Silva \
    --usage-location PT --instance sales --message "Welcome to the EU sales pipeline."
  guestflow publish --file ana.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var data []byte
			var err error
			if file != "" {
				if data, err = os.ReadFile(file); err != nil {
					return err
				}
			} else {
				if roles != "" {
					j.Roles = strings.Split(roles, ",")
				}
				if cmd.Flags().Changed("send-email") {
					j.SendEmail = &sendEmail
				}
				if data, err = json.Marshal(j); err != nil {
					return err
				}
			}
			parsed, err := events.ParseJoined(data)
			if err != nil {
				return fmt.Errorf("the joined data is not valid:\n%w", err)
			}
			if id == "" {
				id = uuid.NewString()
			}
			ev, err := events.NewJoined(id, source, parsed, time.Now())
			if err != nil {
				return err
			}
			// Send what the file said, not our normalised copy, so the
			// invite step sees exactly what an HR system would send.
			if err := ev.SetData(event.ApplicationJSON, json.RawMessage(data)); err != nil {
				return err
			}
			cfg, err := loadForNATS(cmd, g, natsURL)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			ack, err := publishJoinedAck(ctx, cfg.NATS, ev)
			if err != nil {
				return err
			}
			if ack.Duplicate {
				return &exitError{exitDuplicate, fmt.Errorf(
					"event %s was not published: the stream already holds an event with this id, published within its duplicate window (%s); "+
						"that one stands ('guestflow status %s' shows it), and a new onboarding needs a new --id",
					ev.ID(), worker.DuplicateWindow, ev.ID())}
			}
			fmt.Fprintln(cmd.OutOrStdout(), ev.ID())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&j.Email, "email", "", "the person's email address (required)")
	fl.StringVar(&j.GivenName, "given-name", "", "first name (required)")
	fl.StringVar(&j.Surname, "surname", "", "last name (required)")
	fl.StringVar(&j.DisplayName, "display-name", "", `display name (default "given-name surname")`)
	fl.StringVar(&j.UsageLocation, "usage-location", "", "ISO 3166-1 alpha-2 country code, e.g. PT (required)")
	fl.StringVar(&j.Instance, "instance", "", "the Dynamics 365 instance, a key of instances in the configuration (required)")
	fl.StringVar(&roles, "roles", "", "comma-separated security role names (default: the instance's)")
	fl.StringVar(&j.License, "license", "", "SKU part number (default: the instance's)")
	fl.StringVar(&j.Message, "message", "", "a personal message for the notification mail")
	fl.BoolVar(&sendEmail, "send-email", true, "send the notification mail")
	fl.StringVar(&j.RedirectURL, "redirect-url", "", "where the invitation redemption lands (default: the instance URL)")
	fl.StringVar(&file, "file", "", "read the joined data from this JSON file instead of the flags")
	fl.StringVar(&id, "id", "", "event id (default: a new UUID); the same id within two minutes is published once")
	fl.StringVar(&source, "source", "guestflow/cli", "CloudEvents source")
	natsURL.register(fl)
	return cmd
}

// exitDuplicate is publish's exit status for an event the broker dropped
// as a duplicate: neither success (nothing was stored) nor a failure to
// retry (the same id will be dropped again).
const exitDuplicate = 4

// publishJoined sends a joined event in structured mode and waits for the
// PubAck; Nats-Msg-Id is the event id, so a retried publish is stored once.
func publishJoined(ctx context.Context, nc config.NATS, ev event.Event) error {
	_, err := publishJoinedAck(ctx, nc, ev)
	return err
}

// publishJoinedAck is publishJoined, returning the PubAck, whose Duplicate
// says that the stream already had the id.
func publishJoinedAck(ctx context.Context, c config.NATS, ev event.Event) (*jetstream.PubAck, error) {
	nc, js, err := app.Connect(c, "guestflow-publish")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	header, body, err := events.Encode(ev)
	if err != nil {
		return nil, err
	}
	m := &nats.Msg{Subject: events.SubjectJoined, Header: nats.Header(header), Data: body}
	ack, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(ev.ID()))
	if err != nil {
		if denied := provision.Denied(nc, err); denied != err {
			// Not a missing stream: a publisher the broker may not let
			// publish there.
			return nil, fmt.Errorf("publish to %s: %w", events.SubjectJoined, denied)
		}
		return nil, fmt.Errorf("publish to %s: %w (is a worker or 'guestflow dev' running? it creates the stream)", events.SubjectJoined, err)
	}
	return ack, nil
}
