// Package license is the second step: it writes the guest's profile (usage
// location first, or Graph refuses the license) and assigns the instance's
// Dynamics 365 license. It acts only on the user the invite step found for
// the onboarding, and only within the instance's allow-lists.
package license

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/directory"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/identity"
	"github.com/guestflow/guestflow/pkg/events"
)

// Name is the step's name.
const Name = "license"

// Directory is what the step needs from Entra ID.
type Directory interface {
	Licensing(ctx context.Context, userID string) (directory.Licensing, error)
	UpdateProfile(ctx context.Context, userID string, p directory.Profile) error
	SubscribedSkus(ctx context.Context) ([]directory.Sku, error)
	AssignLicense(ctx context.Context, userID, skuID string) error
}

// Verifier admits an event: its instance, what it asks for and its user
// (identity.Verifier).
type Verifier interface {
	Admit(ctx context.Context, onboardingID string, d events.Invited) (config.Instance, identity.User, error)
}

// Handler is the license step.
type Handler struct {
	dir    Directory
	verify Verifier
	skus   *skuList
	now    func() time.Time
}

// New returns the step.
func New(dir Directory, verify Verifier) *Handler {
	return &Handler{dir: dir, verify: verify, skus: &skuList{dir: dir, ttl: SkuTTL, now: time.Now}, now: time.Now}
}

// Handle consumes io.guestflow.user.invited.v1 and emits
// io.guestflow.user.licensed.v1.
func (h *Handler) Handle(ctx context.Context, in event.Event) (*event.Event, error) {
	var d events.Invited
	if err := in.DataAs(&d); err != nil {
		return nil, failure.Permanent(failure.InvalidEvent, fmt.Errorf("invited event data: %w", err))
	}
	_, u, err := h.verify.Admit(ctx, events.OnboardingID(in), d)
	if err != nil {
		return nil, err
	}
	// One read of what is there, so that a retry (or a replay) repeats no
	// identity write that already succeeded: writes are the tenant's
	// scarcest budget.
	have, err := h.dir.Licensing(ctx, d.UserID)
	if err != nil {
		return nil, err
	}
	// A member's profile is the organisation's own identity source's:
	// only the license is added.
	want := directory.Profile{GivenName: d.GivenName, Surname: d.Surname, DisplayName: d.DisplayName, UsageLocation: d.UsageLocation}
	if u.Type == "Guest" && !sameProfile(have.Profile, want) {
		if err := h.dir.UpdateProfile(ctx, d.UserID, want); err != nil {
			return nil, err
		}
	}
	held := func(s directory.Sku) bool {
		return slices.ContainsFunc(have.SkuIDs, func(id string) bool { return strings.EqualFold(id, s.ID) })
	}
	sku, err := h.resolve(ctx, d.License, func(s directory.Sku) bool { return held(s) || s.Free() > 0 })
	if err != nil {
		return nil, err
	}
	if !held(sku) {
		if sku.Free() <= 0 {
			return nil, noSeats(sku)
		}
		if err := h.dir.AssignLicense(ctx, d.UserID, sku.ID); err != nil {
			return nil, fmt.Errorf("assigning %s to user %s: %w", sku.PartNumber, d.UserID, err)
		}
	}
	out := events.Licensed{Invited: d, SkuID: sku.ID, SkuPartNumber: sku.PartNumber}
	next, err := events.Next(in, Name, events.TypeLicensed, out, h.now())
	return &next, err
}

// resolve finds the SKU by part number, as admins name licenses. A cached
// list is taken at its word only when it names the SKU and usable says
// the step can go on with it; otherwise the list is read again, so that a
// failure is always Graph's current answer.
func (h *Handler) resolve(ctx context.Context, part string, usable func(directory.Sku) bool) (directory.Sku, error) {
	skus, cached, err := h.skus.get(ctx, false)
	if err != nil {
		return directory.Sku{}, err
	}
	i := indexOf(skus, part)
	if cached && (i < 0 || !usable(skus[i])) {
		if skus, _, err = h.skus.get(ctx, true); err != nil {
			return directory.Sku{}, err
		}
		i = indexOf(skus, part)
	}
	if i >= 0 {
		return skus[i], nil
	}
	var known []string
	for _, s := range skus {
		known = append(known, s.PartNumber)
	}
	return directory.Sku{}, failure.Permanent(failure.UnknownSKU, fmt.Errorf(
		"license %q is not subscribed in this tenant (subscribed: %s); fix the event's or the instance's license, then replay",
		part, strings.Join(known, ", ")))
}

func indexOf(skus []directory.Sku, part string) int {
	return slices.IndexFunc(skus, func(s directory.Sku) bool { return strings.EqualFold(s.PartNumber, part) })
}

// sameProfile reports whether the user already has the profile the event
// asks for. Graph keeps usageLocation upper-case, whatever was written.
func sameProfile(have, want directory.Profile) bool {
	return have.GivenName == want.GivenName && have.Surname == want.Surname &&
		have.DisplayName == want.DisplayName && strings.EqualFold(have.UsageLocation, want.UsageLocation)
}

func noSeats(s directory.Sku) error {
	return failure.Permanent(failure.NoLicenseSeats, fmt.Errorf(
		"no free %s seat (%d enabled, %d assigned); buy or free a seat, then replay", s.PartNumber, s.Enabled, s.Consumed))
}
