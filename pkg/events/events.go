// Package events defines guestflow's CloudEvents: their types, NATS subjects,
// payloads, the validation rules for the joined event that HR and identity
// systems publish, and the deterministic ids that keep a redelivered input from
// forking an onboarding.
//
// It is the package an integrator imports to publish a joined event; it knows
// nothing about NATS beyond header maps and nothing about Microsoft Graph.
package events

// Event types, one per step outcome. The ".v1" suffix is part of the contract:
// a breaking payload change gets a new type, never a changed meaning.
const (
	TypeJoined       = "io.guestflow.user.joined.v1"
	TypeInvited      = "io.guestflow.user.invited.v1"
	TypeLicensed     = "io.guestflow.user.licensed.v1"
	TypeRoleAssigned = "io.guestflow.user.role_assigned.v1"
	TypeOnboarded    = "io.guestflow.user.onboarded.v1"
)

// NATS subjects, one per event type.
const (
	SubjectJoined       = "guestflow.user.joined"
	SubjectInvited      = "guestflow.user.invited"
	SubjectLicensed     = "guestflow.user.licensed"
	SubjectRoleAssigned = "guestflow.user.role_assigned"
	SubjectOnboarded    = "guestflow.user.onboarded"
)

// Extension attributes guestflow sets on every event it emits.
const (
	// ExtOnboardingID is the id of the joined event that started the
	// onboarding, carried unchanged through every event and dead letter.
	ExtOnboardingID = "onboardingid"
	// ExtTraceparent is the W3C trace context of the CloudEvents
	// distributed-tracing extension.
	ExtTraceparent = "traceparent"
	// ExtTracestate is the vendor part of the tracing extension. It
	// belongs to the traceparent it came with.
	ExtTracestate = "tracestate"
	// ExtJoinedTime is when the onboarding joined (the joined event's
	// time), RFC 3339 in UTC, carried unchanged through every later
	// event: the start of the onboarding's duration.
	ExtJoinedTime = "joinedtime"
)

var subjects = map[string]string{
	TypeJoined:       SubjectJoined,
	TypeInvited:      SubjectInvited,
	TypeLicensed:     SubjectLicensed,
	TypeRoleAssigned: SubjectRoleAssigned,
	TypeOnboarded:    SubjectOnboarded,
}

// Subject returns the NATS subject that events of type typ are published on,
// and false for a type guestflow does not know.
func Subject(typ string) (string, bool) {
	s, ok := subjects[typ]
	return s, ok
}

// Joined is the data of io.guestflow.user.joined.v1, written by HR and
// identity systems. ParseJoined validates and normalises it.
type Joined struct {
	Email         string   `json:"email"`
	GivenName     string   `json:"givenName"`
	Surname       string   `json:"surname"`
	DisplayName   string   `json:"displayName,omitempty"`
	UsageLocation string   `json:"usageLocation"`
	Instance      string   `json:"instance"`
	Roles         []string `json:"roles,omitempty"`
	License       string   `json:"license,omitempty"`
	Message       string   `json:"message,omitempty"`
	// SendEmail is a pointer because absent means true.
	SendEmail   *bool  `json:"sendEmail,omitempty"`
	RedirectURL string `json:"redirectUrl,omitempty"`
}

// SendsEmail reports whether the notify step should mail the user.
func (j Joined) SendsEmail() bool { return j.SendEmail == nil || *j.SendEmail }

// Invited is the data of io.guestflow.user.invited.v1: the normalised joined
// data plus what the invite step found in the directory.
type Invited struct {
	Joined
	UserID            string `json:"userId"`
	UserPrincipalName string `json:"userPrincipalName"`
	InviteRedeemURL   string `json:"inviteRedeemUrl,omitempty"`
	// ExistingUser is true when the address already belonged to a user of
	// the tenant, so no new user was created.
	ExistingUser bool `json:"existingUser"`
	// UserType is "Guest", or "Member" for a person who already belongs to
	// the tenant: a member is not invited and has no redemption link.
	UserType string `json:"userType,omitempty"`
	// GroupID is the instance's security group; absent without one.
	GroupID string `json:"groupId,omitempty"`
}

// Licensed is the data of io.guestflow.user.licensed.v1.
type Licensed struct {
	Invited
	SkuID         string `json:"skuId"`
	SkuPartNumber string `json:"skuPartNumber"`
}

// Role is a Dataverse security role.
type Role struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// RoleAssigned is the data of io.guestflow.user.role_assigned.v1.
type RoleAssigned struct {
	Licensed
	SystemUserID   string `json:"systemUserId"`
	BusinessUnitID string `json:"businessUnitId"`
	AssignedRoles  []Role `json:"assignedRoles"`
	// EmailUpdated is true when this run changed the systemuser's
	// internalemailaddress (the pre-Dynamics 365 fix).
	EmailUpdated bool `json:"emailUpdated"`
}

// Onboarded is the data of io.guestflow.user.onboarded.v1.
type Onboarded struct {
	RoleAssigned
	// NotifiedAt is the RFC 3339 time the mail was sent; absent when
	// sendEmail was false.
	NotifiedAt string `json:"notifiedAt,omitempty"`
}
