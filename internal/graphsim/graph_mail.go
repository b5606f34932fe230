package graphsim

import (
	"fmt"
	"net/http"
	"strings"
)

// Mail is one sent message as GET /_sim/mail lists it.
type Mail struct {
	From        string   `json:"from"`
	To          []string `json:"to"`
	Subject     string   `json:"subject"`
	ContentType string   `json:"contentType"` // html or text
	Body        string   `json:"body"`
	SentAt      string   `json:"sentAt"` // RFC 3339
}

type sendMailRequest struct {
	Message         *mailMessage `json:"message"`
	SaveToSentItems *bool        `json:"saveToSentItems"`
}

func (*sendMailRequest) odataType() string { return "microsoft.graph.sendMail" }

// mailMessage is the part of microsoft.graph.message the emulator reads;
// other message properties are accepted and ignored, as Exchange does.
type mailMessage struct {
	Subject *string `json:"subject"`
	Body    *struct {
		ContentType *string `json:"contentType"`
		Content     *string `json:"content"`
	} `json:"body"`
	ToRecipients  []recipient `json:"toRecipients"`
	CcRecipients  []recipient `json:"ccRecipients"`
	BccRecipients []recipient `json:"bccRecipients"`
}

type recipient struct {
	EmailAddress *struct {
		Address *string `json:"address"`
	} `json:"emailAddress"`
}

// sendMail is POST /users/{sender}/sendMail: 202 and a record in /_sim/mail.
// The sender must be a user with an Exchange mailbox; guests have none.
func (c *call) sendMail() {
	var req sendMailRequest
	if !c.decode(&req, "message", "saveToSentItems") {
		return
	}
	m := req.Message
	if m == nil {
		c.fail(http.StatusBadRequest, "ErrorInvalidParameter", "The 'message' property is required.")
		return
	}
	var to []string
	total := 0
	for i, list := range [][]recipient{m.ToRecipients, m.CcRecipients, m.BccRecipients} {
		for _, r := range list {
			total++
			if r.EmailAddress == nil || r.EmailAddress.Address == nil || !isBareAddress(*r.EmailAddress.Address) {
				addr := ""
				if r.EmailAddress != nil && r.EmailAddress.Address != nil {
					addr = *r.EmailAddress.Address
				}
				c.fail(http.StatusBadRequest, "ErrorInvalidRecipients", fmt.Sprintf(
					"At least one recipient is not valid., Recipient '%s' is not resolved. All recipients must be resolved before a message can be submitted.", addr))
				return
			}
			if i == 0 {
				to = append(to, *r.EmailAddress.Address)
			}
		}
	}
	if total == 0 {
		c.fail(http.StatusBadRequest, "ErrorInvalidRecipients", "At least one recipient is required, but none were found.")
		return
	}
	contentType, content := "text", ""
	if m.Body != nil {
		if m.Body.ContentType != nil {
			contentType = strings.ToLower(*m.Body.ContentType)
			if contentType != "text" && contentType != "html" {
				c.fail(http.StatusBadRequest, "RequestBodyRead", fmt.Sprintf("Cannot convert the literal '%s' to the expected type 'microsoft.graph.bodyType'.", *m.Body.ContentType))
				return
			}
		}
		if m.Body.Content != nil {
			content = *m.Body.Content
		}
	}
	subject := ""
	if m.Subject != nil {
		subject = *m.Subject
	}

	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	sender := c.s.st.lookupUser(c.param("id"))
	switch {
	case sender == nil:
		c.fail(http.StatusNotFound, "ErrorInvalidUser", fmt.Sprintf("The requested user '%s' is invalid.", c.param("id")))
		return
	case !sender.mailbox:
		c.fail(http.StatusNotFound, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
		return
	}
	if to == nil {
		to = []string{}
	}
	c.s.st.mails = append(c.s.st.mails, Mail{
		From: sender.mail, To: to, Subject: subject, ContentType: contentType, Body: content, SentAt: rfc3339(c.now),
	})
	c.empty(http.StatusAccepted)
}
