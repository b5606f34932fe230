package graphsim

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// invitationRequest is microsoft.graph.invitation as a client sends it.
type invitationRequest struct {
	InvitedUserEmailAddress *string          `json:"invitedUserEmailAddress"`
	InviteRedirectURL       *string          `json:"inviteRedirectUrl"`
	InvitedUserDisplayName  *string          `json:"invitedUserDisplayName"`
	SendInvitationMessage   *bool            `json:"sendInvitationMessage"`
	InvitedUserType         *string          `json:"invitedUserType"`
	ResetRedemption         *bool            `json:"resetRedemption"`
	InvitedUserMessageInfo  *json.RawMessage `json:"invitedUserMessageInfo"`
}

func (*invitationRequest) odataType() string { return "microsoft.graph.invitation" }

type messageInfo struct {
	MessageLanguage       *string           `json:"messageLanguage"`
	CcRecipients          []json.RawMessage `json:"ccRecipients"`
	CustomizedMessageBody *string           `json:"customizedMessageBody"`
}

// invite is POST /invitations. A new address becomes a guest user
// (PendingAcceptance, no usage location, UPN local_domain#EXT#@tenant); an
// address that already belongs to a guest returns that guest with a fresh
// redeem URL, as Entra does. The redeem URL points at the emulator so the
// invitation can be accepted.
func (c *call) invite() {
	var req invitationRequest
	if !c.decode(&req, "invitedUserEmailAddress", "inviteRedirectUrl", "invitedUserDisplayName",
		"sendInvitationMessage", "invitedUserType", "resetRedemption", "invitedUserMessageInfo") {
		return
	}
	addr, msg := checkInvitation(&req)
	if msg != "" {
		c.fail(http.StatusBadRequest, "BadRequest", msg)
		return
	}
	var info messageInfo
	if req.InvitedUserMessageInfo != nil && string(*req.InvitedUserMessageInfo) != "null" {
		if err := json.Unmarshal(*req.InvitedUserMessageInfo, &info); err != nil {
			c.fail(http.StatusBadRequest, "BadRequest", "Invalid value specified for property 'invitedUserMessageInfo' of resource 'Invitation': "+err.Error())
			return
		}
	}
	send := req.SendInvitationMessage != nil && *req.SendInvitationMessage
	display := ""
	if req.InvitedUserDisplayName != nil {
		display = *req.InvitedUserDisplayName
	}

	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	st := c.s.st
	u := c.guestByMail(addr)
	if u == nil {
		for _, other := range st.byValue[strings.ToLower(addr)] {
			if strings.EqualFold(other.mail, addr) || strings.EqualFold(other.upn, addr) {
				c.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("The invited user '%s' already exists in the directory as a member of this organization.", addr))
				return
			}
		}
		u = newGuest(addr, display, c.now)
		if st.lookupUser(u.id) != nil || st.lookupUser(u.upn) != nil {
			c.fail(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Another object with the same value for property userPrincipalName (%s) already exists.", u.upn))
			return
		}
		st.addUser(u)
	}
	key := strings.ToLower(addr)
	st.inviteCount[key]++
	inv := &invitation{
		id:          derivedID("invitation", key, strconv.Itoa(st.inviteCount[key])),
		userID:      u.id,
		redirectURL: *req.InviteRedirectURL,
	}
	st.invitations[inv.id] = inv
	redeem := c.base() + "/_sim/redeem/" + inv.id
	if send {
		u.invitationMessagesSent++
		st.mails = append(st.mails, invitationMail(addr, redeem, info, c.now))
	}
	status := "PendingAcceptance"
	if u.externalState == "Accepted" {
		status = "Completed"
	}
	if display == "" {
		display = u.displayName
	}
	c.reply(http.StatusCreated, map[string]any{
		"@odata.context":          c.base() + "/v1.0/$metadata#invitations/$entity",
		"id":                      inv.id,
		"inviteRedeemUrl":         redeem,
		"inviteRedirectUrl":       inv.redirectURL,
		"invitedUserDisplayName":  display,
		"invitedUserEmailAddress": addr,
		"invitedUserType":         "Guest",
		"resetRedemption":         false,
		"sendInvitationMessage":   send,
		"status":                  status,
		"invitedUserMessageInfo": map[string]any{
			"messageLanguage": info.MessageLanguage, "ccRecipients": []any{}, "customizedMessageBody": info.CustomizedMessageBody,
		},
		"invitedUser": map[string]any{"id": u.id},
	})
}

// checkInvitation validates the request and returns the invited address.
func checkInvitation(req *invitationRequest) (string, string) {
	if req.InvitedUserEmailAddress == nil || *req.InvitedUserEmailAddress == "" {
		return "", "The 'invitedUserEmailAddress' property is required."
	}
	addr := *req.InvitedUserEmailAddress
	if !isBareAddress(addr) {
		return "", fmt.Sprintf("The invited user email address '%s' is not a valid email address.", addr)
	}
	if _, domain, _ := strings.Cut(addr, "@"); strings.EqualFold(domain, TenantDomain) {
		return "", fmt.Sprintf("The invited user '%s' belongs to a verified domain of this organization; invite external addresses only.", addr)
	}
	if req.InviteRedirectURL == nil || *req.InviteRedirectURL == "" {
		return "", "The 'inviteRedirectUrl' property is required."
	}
	if u, err := url.Parse(*req.InviteRedirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Sprintf("The inviteRedirectUrl '%s' is not an absolute http or https URL.", *req.InviteRedirectURL)
	}
	if req.InvitedUserDisplayName != nil && utf8.RuneCountInString(*req.InvitedUserDisplayName) > 256 {
		return "", "Invalid value specified for property 'invitedUserDisplayName' of resource 'Invitation'."
	}
	if req.InvitedUserType != nil && !strings.EqualFold(*req.InvitedUserType, "Guest") {
		return "", fmt.Sprintf("invitedUserType '%s' is not supported by graphsim; it invites guests only.", *req.InvitedUserType)
	}
	return addr, ""
}

// isBareAddress accepts addr@domain only: no display name, no angle brackets.
func isBareAddress(addr string) bool {
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr {
		return false
	}
	_, domain, _ := strings.Cut(addr, "@")
	return strings.Contains(domain, ".") && len(addr) <= 254
}

// guestByMail finds an existing guest for an address. Caller holds s.mu.
func (c *call) guestByMail(addr string) *user {
	for _, u := range c.s.st.byValue[strings.ToLower(addr)] {
		if u.userType == "Guest" && strings.EqualFold(u.mail, addr) {
			return u
		}
	}
	return nil
}

// newGuest builds the user an invitation creates. Its id is derived from
// the address, so reruns of a test or demo produce the same ids.
func newGuest(addr, display string, now time.Time) *user {
	local, domain, _ := strings.Cut(addr, "@")
	if display == "" {
		display = local
	}
	return &user{
		id:            derivedID("user", addr),
		upn:           local + "_" + domain + "#EXT#@" + TenantDomain,
		mail:          addr,
		displayName:   display,
		userType:      "Guest",
		creationType:  "Invitation",
		externalState: "PendingAcceptance",
		otherMails:    []string{addr},
		created:       now,
	}
}

// invitationMail is the mail Microsoft would send when asked to
// (sendInvitationMessage true). guestflow never asks, so any such mail in
// /_sim/mail shows a client bug.
func invitationMail(addr, redeem string, info messageInfo, now time.Time) Mail {
	body := `<p>You're invited to the guestflowdev organization.</p><p><a href="` + html.EscapeString(redeem) + `">Accept invitation</a></p>`
	if info.CustomizedMessageBody != nil {
		body += "<p>" + html.EscapeString(*info.CustomizedMessageBody) + "</p>"
	}
	return Mail{
		From: "invites@microsoft.com", To: []string{addr}, Subject: "You're invited to the guestflowdev organization",
		ContentType: "html", Body: body, SentAt: rfc3339(now),
	}
}

// handleRedeem is GET /_sim/redeem/{id}: the invitee accepts and is sent on
// to inviteRedirectUrl, as Entra's redemption flow ends.
func (s *Sim) handleRedeem(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	inv := s.st.invitations[strings.ToLower(r.PathValue("id"))]
	if inv != nil {
		if u := s.st.lookupUser(inv.userID); u != nil && u.externalState != "Accepted" {
			u.externalState, u.externalStateChanged = "Accepted", s.now()
		}
	}
	s.mu.Unlock()
	if inv == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{
			"code": "NotFound", "message": fmt.Sprintf("graphsim has no invitation %q", r.PathValue("id"))}})
		return
	}
	w.Header().Set("Location", inv.redirectURL)
	w.WriteHeader(http.StatusFound)
}
