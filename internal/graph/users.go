package graph

import (
	"context"
	"strings"

	"github.com/google/uuid"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/invitations"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/subscribedskus"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/guestflow/guestflow/internal/directory"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/wire"
)

// FindUserByMail returns the users whose mail or otherMails is address.
// Graph compares strings case-insensitively; a quote is escaped by doubling
// it, as OData string literals require (liam.o”brien@…).
func (c *Client) FindUserByMail(ctx context.Context, address string) ([]directory.User, error) {
	lit := wire.Literal(address)
	filter := "mail eq " + lit + " or otherMails/any(x:x eq " + lit + ")"
	res, err := users.NewUsersRequestBuilderInternal(c.params(), c.adapter).Get(ctx,
		&users.UsersRequestBuilderGetRequestConfiguration{QueryParameters: &users.UsersRequestBuilderGetQueryParameters{
			Filter: &filter,
			Select: []string{"id", "mail", "otherMails", "userPrincipalName", "userType", "externalUserState"},
		}})
	if err != nil {
		return nil, remote("find user by mail", err)
	}
	var out []directory.User
	for _, u := range res.GetValue() {
		out = append(out, userOf(u))
	}
	return out, nil
}

func userOf(u models.Userable) directory.User {
	return directory.User{
		ID:                deref(u.GetId()),
		Mail:              deref(u.GetMail()),
		OtherMails:        u.GetOtherMails(),
		UserPrincipalName: deref(u.GetUserPrincipalName()),
		UserType:          deref(u.GetUserType()),
		ExternalUserState: deref(u.GetExternalUserState()),
	}
}

// GetUser reads one user by id or user principal name.
func (c *Client) GetUser(ctx context.Context, id string) (directory.User, error) {
	u, err := users.NewUsersRequestBuilderInternal(c.params(), c.adapter).ByUserId(id).Get(ctx, nil)
	if err != nil {
		return directory.User{}, remote("get user", err)
	}
	if u == nil {
		return directory.User{}, remote("get user", errNoBody)
	}
	return userOf(u), nil
}

// Invite creates (or, for an existing guest, renews) a B2B invitation.
// sendInvitationMessage is always false: Microsoft drops a customised
// message when an application invites, so guestflow sends its own mail.
func (c *Client) Invite(ctx context.Context, email, displayName, redirectURL string) (directory.Invitation, error) {
	body := models.NewInvitation()
	body.SetInvitedUserEmailAddress(&email)
	body.SetInvitedUserDisplayName(&displayName)
	body.SetInviteRedirectUrl(&redirectURL)
	no := false
	body.SetSendInvitationMessage(&no)
	inv, err := invitations.NewInvitationsRequestBuilderInternal(c.params(), c.adapter).Post(ctx, body, nil)
	if err != nil {
		return directory.Invitation{}, remote("invite", err)
	}
	if inv == nil || inv.GetInvitedUser() == nil {
		return directory.Invitation{}, remote("invite", errNoBody)
	}
	return directory.Invitation{
		ID:        deref(inv.GetId()),
		UserID:    deref(inv.GetInvitedUser().GetId()),
		RedeemURL: deref(inv.GetInviteRedeemUrl()),
	}, nil
}

// AddGroupMember adds userID to groupID. Graph answers 400 "One or more
// added object references already exist" for a present member: that is the
// state we want, so it is success.
func (c *Client) AddGroupMember(ctx context.Context, groupID, userID string) error {
	ref := models.NewReferenceCreate()
	odataID := c.base + "/directoryObjects/" + userID
	ref.SetOdataId(&odataID)
	err := groups.NewGroupsRequestBuilderInternal(c.params(), c.adapter).ByGroupId(groupID).Members().Ref().Post(ctx, ref, nil)
	if err == nil {
		return nil
	}
	err = remote("add group member", err)
	if r := asRemote(err); r != nil && r.Status == 400 && strings.Contains(r.Message, "already exist") {
		return nil
	}
	// 404 naming the group: the group itself is missing, which no retry
	// fixes. Every other "does not exist" is the user, not replicated yet.
	return refine(err, failure.KindNotFoundGroup, func(r *failure.Remote) bool {
		return r.Status == 404 && strings.Contains(strings.ToLower(r.Message), strings.ToLower(groupID))
	})
}

// UpdateProfile writes the names and the usage location, which Graph
// requires before it will assign a license.
func (c *Client) UpdateProfile(ctx context.Context, userID string, p directory.Profile) error {
	body := models.NewUser()
	body.SetGivenName(&p.GivenName)
	body.SetSurname(&p.Surname)
	body.SetDisplayName(&p.DisplayName)
	body.SetUsageLocation(&p.UsageLocation)
	_, err := users.NewUsersRequestBuilderInternal(c.params(), c.adapter).ByUserId(userID).Patch(ctx, body, nil)
	return remote("update profile", err)
}

// SubscribedSkus lists the tenant's license SKUs with their seat counts.
func (c *Client) SubscribedSkus(ctx context.Context) ([]directory.Sku, error) {
	res, err := subscribedskus.NewSubscribedSkusRequestBuilderInternal(c.params(), c.adapter).Get(ctx, nil)
	if err != nil {
		return nil, remote("list subscribed SKUs", err)
	}
	var out []directory.Sku
	for _, s := range res.GetValue() {
		sku := directory.Sku{PartNumber: deref(s.GetSkuPartNumber())}
		if id := s.GetSkuId(); id != nil {
			sku.ID = id.String()
		}
		if n := s.GetConsumedUnits(); n != nil {
			sku.Consumed = int(*n)
		}
		if p := s.GetPrepaidUnits(); p != nil && p.GetEnabled() != nil {
			sku.Enabled = int(*p.GetEnabled())
		}
		out = append(out, sku)
	}
	return out, nil
}

// Licensing reads a user's profile and assigned SKU ids in one call, from
// the user itself (assignedLicenses): the same read permission as the user
// (the licenseDetails relationship lists no application permission in
// Microsoft's v1.0 reference).
func (c *Client) Licensing(ctx context.Context, userID string) (directory.Licensing, error) {
	u, err := users.NewUsersRequestBuilderInternal(c.params(), c.adapter).ByUserId(userID).Get(ctx,
		&users.UserItemRequestBuilderGetRequestConfiguration{QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{
			Select: []string{"id", "givenName", "surname", "displayName", "usageLocation", "assignedLicenses"},
		}})
	if err != nil {
		return directory.Licensing{}, remote("read profile and licenses", err)
	}
	if u == nil {
		return directory.Licensing{}, remote("read profile and licenses", errNoBody)
	}
	l := directory.Licensing{Profile: directory.Profile{
		GivenName: deref(u.GetGivenName()), Surname: deref(u.GetSurname()),
		DisplayName: deref(u.GetDisplayName()), UsageLocation: deref(u.GetUsageLocation()),
	}}
	for _, a := range u.GetAssignedLicenses() {
		if id := a.GetSkuId(); id != nil {
			l.SkuIDs = append(l.SkuIDs, id.String())
		}
	}
	return l, nil
}

// AssignLicense assigns one SKU with all its plans enabled.
func (c *Client) AssignLicense(ctx context.Context, userID, skuID string) error {
	if err := wire.GUID(skuID); err != nil {
		return failure.Malformed("graph", "assign license", "SKU id", err)
	}
	id, err := uuid.Parse(skuID)
	if err != nil {
		return failure.Malformed("graph", "assign license", "SKU id", err)
	}
	lic := models.NewAssignedLicense()
	lic.SetSkuId(&id)
	lic.SetDisabledPlans([]uuid.UUID{})
	body := users.NewItemAssignLicensePostRequestBody()
	body.SetAddLicenses([]models.AssignedLicenseable{lic})
	body.SetRemoveLicenses([]uuid.UUID{})
	_, err = users.NewUsersRequestBuilderInternal(c.params(), c.adapter).ByUserId(userID).AssignLicense().Post(ctx, body, nil)
	// Another onboarding may have taken the last seat since the caller
	// read the seat counts.
	return refine(remote("assign license", err), failure.KindNoSeats, func(r *failure.Remote) bool {
		return r.Status == 400 && strings.Contains(r.Message, "does not have any available licenses")
	})
}

// SendMail sends an HTML message from the sender's mailbox.
func (c *Client) SendMail(ctx context.Context, m directory.Mail) error {
	html := models.HTML_BODYTYPE
	content := models.NewItemBody()
	content.SetContentType(&html)
	content.SetContent(&m.HTML)
	addr := models.NewEmailAddress()
	addr.SetAddress(&m.To)
	to := models.NewRecipient()
	to.SetEmailAddress(addr)
	msg := models.NewMessage()
	msg.SetSubject(&m.Subject)
	msg.SetBody(content)
	msg.SetToRecipients([]models.Recipientable{to})
	body := users.NewItemSendMailPostRequestBody()
	body.SetMessage(msg)
	save := false
	body.SetSaveToSentItems(&save)
	err := users.NewUsersRequestBuilderInternal(c.params(), c.adapter).ByUserId(m.From).SendMail().Post(ctx, body, nil)
	// Exchange's 404s on sendMail are about the sender: no such user, or
	// no mailbox Graph can use.
	return refine(remote("send mail", err), failure.KindNotFoundSender, func(r *failure.Remote) bool {
		return r.Status == 404 && (r.Code == "ErrorInvalidUser" || r.Code == "MailboxNotEnabledForRESTAPI")
	})
}
