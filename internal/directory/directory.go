// Package directory holds the plain values guestflow reads from and writes
// to Microsoft Entra ID through Graph. It exists so that the steps can
// describe what they need without importing the Graph SDK, which is slow to
// build; package graph fills these values in.
package directory

// User is a directory user as the steps need it.
type User struct {
	ID                string
	Mail              string
	OtherMails        []string
	UserPrincipalName string
	// UserType is "Member" or "Guest".
	UserType string
	// ExternalUserState is "PendingAcceptance" or "Accepted" for guests.
	ExternalUserState string
}

// IsGuest reports whether u is a B2B guest rather than a member of the tenant.
func (u User) IsGuest() bool { return u.UserType == "Guest" }

// Invitation is the result of POST /invitations.
type Invitation struct {
	ID        string
	UserID    string
	RedeemURL string
}

// Profile is what the license step writes before assigning a license.
type Profile struct {
	GivenName     string
	Surname       string
	DisplayName   string
	UsageLocation string
}

// Licensing is what the license step reads of a user before it writes:
// the profile as it is and the SKU ids assigned, so that a retry writes
// nothing that already holds.
type Licensing struct {
	Profile Profile
	SkuIDs  []string
}

// Sku is a subscribed license SKU of the tenant.
type Sku struct {
	ID         string
	PartNumber string
	Enabled    int
	Consumed   int
}

// Free is the number of unassigned seats.
func (s Sku) Free() int { return s.Enabled - s.Consumed }

// Mail is a message sent through POST /users/{sender}/sendMail.
type Mail struct {
	From    string
	To      string
	Subject string
	// HTML is the body; it is sent with contentType html.
	HTML string
}
