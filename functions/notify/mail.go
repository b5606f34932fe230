package notify

import (
	"bytes"
	_ "embed"
	"html/template"

	"github.com/guestflow/guestflow/pkg/events"
)

//go:embed mail.html.tmpl
var mailHTML string

// html/template escapes every value by context, so a personal message or a
// name containing markup is shown as text, never rendered.
var mailTemplate = template.Must(template.New("mail").Parse(mailHTML))

// Unsupported lists what B2B guests cannot use in Dynamics 365, as Microsoft
// documents it; the mail tells the guest so they do not go looking.
var Unsupported = []string{
	"the Unified Service Desk client",
	"the Dynamics 365 App for Outlook",
	"server-side email synchronization (guests have no mailbox of their own in Dynamics 365)",
	"Office 365 Groups inside Dynamics 365 (group conversations still work as a guest in Outlook)",
}

// Links say where the mail sends the guest.
type Links struct {
	// Instance is the instance URL, where the guest signs in.
	Instance string
	// Pending is true for a guest with no redemption link in the event
	// who has not redeemed an earlier invitation: signing in at the
	// instance URL redeems it just in time, and the mail says so.
	Pending bool
}

// Render returns the subject and HTML body of the onboarding mail.
func Render(d events.RoleAssigned, links Links) (subject, html string, err error) {
	var b bytes.Buffer
	err = mailTemplate.Execute(&b, struct {
		events.RoleAssigned
		InstanceURL string
		Pending     bool
		Unsupported []string
	}{d, links.Instance, links.Pending && d.InviteRedeemURL == "", Unsupported})
	return "Your access to Dynamics 365 (" + d.Instance + ") is ready", b.String(), err
}
