package license

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/directory"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/identity"
	"github.com/guestflow/guestflow/pkg/events"
)

const skuID = "1e1a282c-9c54-43a2-9310-98ef728faace"

// tenant is a directory with one guest, which remembers what was written
// and can fail the next license assignment.
type tenant struct {
	profile      directory.Profile
	skus         []string
	patches      int
	assigns      int
	failAssignOn int // the assignment call that fails, 1-based; 0: none
	skuReads     int
	seats        int // enabled seats; 0 means 10
}

func (t *tenant) Licensing(context.Context, string) (directory.Licensing, error) {
	return directory.Licensing{Profile: t.profile, SkuIDs: append([]string(nil), t.skus...)}, nil
}

func (t *tenant) UpdateProfile(_ context.Context, _ string, p directory.Profile) error {
	t.patches++
	t.profile = p
	return nil
}

func (t *tenant) SubscribedSkus(context.Context) ([]directory.Sku, error) {
	t.skuReads++
	seats := t.seats
	if seats == 0 {
		seats = 10
	}
	return []directory.Sku{{ID: skuID, PartNumber: "DYN365_ENTERPRISE_SALES", Enabled: seats, Consumed: len(t.skus)}}, nil
}

func (t *tenant) AssignLicense(_ context.Context, _, id string) error {
	t.assigns++
	if t.assigns == t.failAssignOn {
		return errors.New("connection reset")
	}
	t.skus = append(t.skus, id)
	return nil
}

// admitAll admits every event as a guest's.
type admitAll struct{ typ string }

func (a admitAll) Admit(_ context.Context, _ string, d events.Invited) (config.Instance, identity.User, error) {
	return config.Instance{}, identity.User{ID: d.UserID, Type: a.typ}, nil
}

func invited(t *testing.T) events.Invited {
	t.Helper()
	return events.Invited{
		Joined: events.Joined{Email: "ana@fabrikam.com", GivenName: "Ana", Surname: "Silva", DisplayName: "Ana Silva",
			UsageLocation: "pt", Instance: "sales", License: "DYN365_ENTERPRISE_SALES"},
		UserID: "5e4d3c2b-0000-4000-8000-000000000001", UserType: "Guest",
	}
}

func handle(t *testing.T, h *Handler, d events.Invited) error {
	t.Helper()
	j, err := events.NewJoined("ob-1", "hr/test", d.Joined, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	in, err := events.Next(j, "invite", events.TypeInvited, d, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Handle(context.Background(), in)
	return err
}

// TestARetryRepeatsNoWrite: an attempt that wrote the profile and then
// failed to assign the license is retried without writing the profile
// again, and a delivery after success writes nothing at all: identity
// writes are the budget every onboarding is paced by.
func TestARetryRepeatsNoWrite(t *testing.T) {
	dir := &tenant{failAssignOn: 1}
	h := New(dir, admitAll{typ: "Guest"})
	if err := handle(t, h, invited(t)); err == nil {
		t.Fatal("the failed assignment was not reported")
	}
	if err := handle(t, h, invited(t)); err != nil {
		t.Fatal(err)
	}
	if err := handle(t, h, invited(t)); err != nil { // a redelivery after success
		t.Fatal(err)
	}
	if dir.patches != 1 || dir.assigns != 2 {
		t.Errorf("%d profile writes and %d assignments, want 1 and 2 (the failed one and its retry)", dir.patches, dir.assigns)
	}
	// Graph keeps usageLocation upper-case: "pt" asked for, "PT" there is
	// the same profile.
	dir.profile.UsageLocation = "PT"
	if err := handle(t, h, invited(t)); err != nil || dir.patches != 1 {
		t.Errorf("a usage location differing only in case was written again (%d writes, %v)", dir.patches, err)
	}
}

// TestAChangedProfileIsWritten: a re-join with a new name updates it.
func TestAChangedProfileIsWritten(t *testing.T) {
	dir := &tenant{profile: directory.Profile{GivenName: "Ana", Surname: "Silva", DisplayName: "Ana Silva", UsageLocation: "PT"}, skus: []string{skuID}}
	h := New(dir, admitAll{typ: "Guest"})
	d := invited(t)
	d.Surname, d.DisplayName = "Silva Costa", "Ana Silva Costa"
	if err := handle(t, h, d); err != nil {
		t.Fatal(err)
	}
	if dir.patches != 1 || dir.assigns != 0 || dir.profile.Surname != "Silva Costa" {
		t.Errorf("%d writes, %d assignments, surname %q; want the new name written and no assignment", dir.patches, dir.assigns, dir.profile.Surname)
	}
}

// TestAMembersProfileIsNeverWritten: only the license is added.
func TestAMembersProfileIsNeverWritten(t *testing.T) {
	dir := &tenant{}
	h := New(dir, admitAll{typ: "Member"})
	if err := handle(t, h, invited(t)); err != nil {
		t.Fatal(err)
	}
	if dir.patches != 0 || dir.assigns != 1 {
		t.Errorf("%d profile writes and %d assignments for a member, want 0 and 1", dir.patches, dir.assigns)
	}
}

// TestTheSkuListIsReadOncePerTTL: onboardings share the tenant's SKU list,
// but a cached list that shows no free seat, or does not name the
// license, is read again before the step fails.
func TestTheSkuListIsReadOncePerTTL(t *testing.T) {
	// The guest holds the tenant's only seat already.
	dir := &tenant{seats: 1, skus: []string{skuID}}
	h := New(dir, admitAll{typ: "Guest"})
	for range 2 {
		if err := handle(t, h, invited(t)); err != nil {
			t.Fatal(err)
		}
	}
	if dir.skuReads != 1 {
		t.Fatalf("%d SKU reads for two deliveries, want 1", dir.skuReads)
	}
	// Another guest, without the license: the cached list says the only
	// seat is taken, and a seat bought since is found by reading again.
	dir.skus, dir.seats = nil, 2
	if err := handle(t, h, invited(t)); err != nil {
		t.Fatalf("a seat bought after the list was cached: %v", err)
	}
	if dir.skuReads != 2 || dir.assigns != 1 {
		t.Errorf("%d SKU reads and %d assignments, want 2 and 1: a cached list without a free seat is read again", dir.skuReads, dir.assigns)
	}
	// A license the list does not name is looked for afresh too.
	unknown := invited(t)
	unknown.License = "DYN365_NOT_SUBSCRIBED"
	if err := handle(t, h, unknown); failure.Classify(err).Reason != failure.UnknownSKU {
		t.Fatalf("got %v, want unknown_sku", err)
	}
	if dir.skuReads != 3 {
		t.Errorf("%d SKU reads, want 3", dir.skuReads)
	}
}
