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

// Render returns the subject and HTML body of the onboarding mail, which
// sends the guest to instanceURL.
func Render(d events.RoleAssigned, instanceURL string) (subject, html string, err error) {
	var b bytes.Buffer
	err = mailTemplate.Execute(&b, struct {
		events.RoleAssigned
		InstanceURL string
		Unsupported []string
	}{d, instanceURL, Unsupported})
	return "Your access to Dynamics 365 (" + d.Instance + ") is ready", b.String(), err
}
