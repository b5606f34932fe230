// Package dataverse is a small client for the Dataverse Web API (v9.2): the
// handful of calls the role step makes on a Dynamics 365 environment. It uses
// plain net/http and the same token credential as Graph, with a token per
// environment URL (scope "<instance URL>/.default").
package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/wire"
)

// APIPath is where the Web API lives below an instance URL.
const APIPath = "/api/data/v9.2"

// Client calls the Web API of any environment the credential may access.
type Client struct {
	cred azcore.TokenCredential
	hc   *http.Client
}

// New returns a client; hc carries the trusted CAs and the timeout.
func New(cred azcore.TokenCredential, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{cred: cred, hc: hc}
}

// SystemUser is a row of systemusers.
type SystemUser struct {
	ID             string `json:"systemuserid"`
	AADObjectID    string `json:"azureactivedirectoryobjectid"`
	InternalEmail  string `json:"internalemailaddress"`
	BusinessUnitID string `json:"_businessunitid_value"`
}

// Role is a security role of one business unit.
type Role struct {
	ID             string `json:"roleid"`
	Name           string `json:"name"`
	BusinessUnitID string `json:"_businessunitid_value,omitempty"`
	// TemplateID is the role template the role was made from; copies of
	// a built-in role keep it, whatever they are renamed to.
	TemplateID string `json:"_roletemplateid_value,omitempty"`
}

// SystemAdministratorTemplate is the role template of Dataverse's built-in
// System Administrator role, the one holding every privilege.
const SystemAdministratorTemplate = "627090ff-40a3-4053-8790-584edc5be201"

// IsSystemAdministrator reports whether r is the System Administrator role
// or a copy of it: by template when Dataverse names one, else by name.
func (r Role) IsSystemAdministrator() bool {
	return strings.EqualFold(r.TemplateID, SystemAdministratorTemplate) || strings.EqualFold(r.Name, "System Administrator")
}

// FindSystemUser returns the environment's systemuser for an Entra object
// id, or nil while the user has not been synced into the environment.
func (c *Client) FindSystemUser(ctx context.Context, instanceURL, objectID string) (*SystemUser, error) {
	if err := wire.GUID(objectID); err != nil {
		return nil, failure.Malformed("dataverse", "find systemuser", "user id", err)
	}
	var res struct{ Value []SystemUser }
	q := url.Values{
		"$filter": {"azureactivedirectoryobjectid eq " + objectID},
		"$select": {"systemuserid,azureactivedirectoryobjectid,internalemailaddress,_businessunitid_value"},
	}
	if err := c.do(ctx, "find systemuser", http.MethodGet, instanceURL, "/systemusers", q, nil, &res); err != nil {
		return nil, err
	}
	if len(res.Value) == 0 {
		return nil, nil
	}
	return &res.Value[0], nil
}

// BusinessUnit returns the id of the business unit called name, or of the
// root business unit when name is empty; "" when there is none.
func (c *Client) BusinessUnit(ctx context.Context, instanceURL, name string) (string, error) {
	filter := "_parentbusinessunitid_value eq null"
	if name != "" {
		filter = "name eq " + wire.Literal(name)
	}
	var res struct {
		Value []struct {
			ID string `json:"businessunitid"`
		}
	}
	q := url.Values{"$filter": {filter}, "$select": {"businessunitid,name"}}
	if err := c.do(ctx, "find business unit", http.MethodGet, instanceURL, "/businessunits", q, nil, &res); err != nil {
		return "", err
	}
	if len(res.Value) == 0 {
		return "", nil
	}
	return res.Value[0].ID, nil
}

// FindRole returns the role called name in business unit bu, or nil.
// Dataverse copies every role into each business unit with a new id, so a
// role must be looked up in the user's own business unit.
func (c *Client) FindRole(ctx context.Context, instanceURL, name, bu string) (*Role, error) {
	if err := wire.GUID(bu); err != nil {
		return nil, failure.Malformed("dataverse", "find role", "business unit id", err)
	}
	var res struct{ Value []Role }
	q := url.Values{
		"$filter": {"name eq " + wire.Literal(name) + " and _businessunitid_value eq " + bu},
		"$select": {"roleid,name,_businessunitid_value,_roletemplateid_value"},
	}
	if err := c.do(ctx, "find role", http.MethodGet, instanceURL, "/roles", q, nil, &res); err != nil {
		return nil, err
	}
	if len(res.Value) == 0 {
		return nil, nil
	}
	return &res.Value[0], nil
}

// UserRoles lists the roles associated with a systemuser.
func (c *Client) UserRoles(ctx context.Context, instanceURL, userID string) ([]Role, error) {
	var res struct{ Value []Role }
	q := url.Values{"$select": {"roleid,name"}}
	path := "/systemusers(" + userID + ")/systemuserroles_association"
	if err := c.do(ctx, "list user roles", http.MethodGet, instanceURL, path, q, nil, &res); err != nil {
		return nil, err
	}
	return res.Value, nil
}

// AssociateRole gives a systemuser a role. Dataverse rejects a present role
// with a duplicate-key error, so callers check UserRoles first.
func (c *Client) AssociateRole(ctx context.Context, instanceURL, userID, roleID string) error {
	body := map[string]string{"@odata.id": instanceURL + APIPath + "/roles(" + roleID + ")"}
	path := "/systemusers(" + userID + ")/systemuserroles_association/$ref"
	return c.do(ctx, "associate role", http.MethodPost, instanceURL, path, nil, body, nil)
}

// SetInternalEmail sets a systemuser's primary email, the fix that
// environments older than Dynamics 365 need for B2B guests.
func (c *Client) SetInternalEmail(ctx context.Context, instanceURL, userID, email string) error {
	body := map[string]string{"internalemailaddress": email}
	return c.do(ctx, "update systemuser email", http.MethodPatch, instanceURL, "/systemusers("+userID+")", nil, body, nil)
}

// do sends one Web API request to an environment, with a token for it.
func (c *Client) do(ctx context.Context, op, method, instanceURL, path string, q url.Values, in, out any) error {
	u := instanceURL + APIPath + path
	if len(q) > 0 {
		// The Web API wants %20 for spaces in $filter, not '+'.
		u += "?" + strings.ReplaceAll(q.Encode(), "+", "%20")
	}
	return c.call(ctx, "dataverse", op, instanceURL+"/.default", method, u, in, out)
}

// call sends one JSON request with a bearer token for scope and decodes a
// JSON answer into out (when not nil). Failures become *failure.Remote with
// the service's status, error code, message, x-ms-service-request-id and
// Retry-After.
func (c *Client) call(ctx context.Context, service, op, scope, method, u string, in, out any) error {
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	req.Header.Set("OData-MaxVersion", "4.0")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var verdict *failure.Error
		if errors.As(err, &verdict) {
			// Already judged on the way (a shared pause after a 429).
			return fmt.Errorf("%s: %s: %w", service, op, err)
		}
		return &failure.Remote{Service: service, Op: op, Message: err.Error()}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return &failure.Remote{Service: service, Op: op, Status: resp.StatusCode, Message: err.Error()}
	}
	if resp.StatusCode >= 300 {
		return remoteError(service, op, resp, raw)
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s: %s: decoding the answer: %w", service, op, err)
	}
	return nil
}

func remoteError(service, op string, resp *http.Response, raw []byte) error {
	r := &failure.Remote{
		Service:    service,
		Op:         op,
		Status:     resp.StatusCode,
		RequestID:  wire.RequestID(resp.Header),
		RetryAfter: wire.RetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(raw, &body) == nil && body.Error.Message != "" {
		r.Code, r.Message = body.Error.Code, body.Error.Message
	} else {
		r.Message = strings.TrimSpace(string(raw))
	}
	if service == "powerplatform" {
		r.Kind = powerPlatformKind(r)
	} else {
		r.Kind = webAPIKind(r)
	}
	return r
}

// webAPIKind is what a Web API answer means: the token (401), the
// application user's security roles (403), an instance URL that names no
// organization (404 0x80040217 "Organization … does not exist"; a missing
// row has the same code and names its table), or a row that is there
// already (0x80040237, which a repeated role association produces).
func webAPIKind(r *failure.Remote) failure.Kind {
	switch {
	case r.Status == http.StatusUnauthorized:
		return failure.KindCredentials
	case r.Status == http.StatusForbidden:
		return failure.KindPermission
	case r.Status == http.StatusNotFound && r.Code == "0x80040217" && strings.HasPrefix(r.Message, "Organization "):
		return failure.KindNotFoundInstance
	case r.Code == "0x80040237":
		return failure.KindDuplicate
	}
	return failure.KindOther
}

// powerPlatformKind is what an answer of the admin API's addUser means.
// It refuses a user whose license or group membership has not reached
// Power Platform yet, with 403 (or 400 and a code naming the cause), for
// minutes after the assignment: that is a wait, not a failure. A user it
// cannot find yet is the same directory lag Graph shows. Only the codes
// about the request itself, the environment, the app's authorization
// (AuthorizationFailed, as Azure's resource APIs say it) and the token are
// final.
func powerPlatformKind(r *failure.Remote) failure.Kind {
	switch {
	case r.Status == http.StatusUnauthorized:
		return failure.KindCredentials
	case r.Status == http.StatusNotFound && r.Code == "EnvironmentNotFound":
		return failure.KindNotFoundEnvironment
	case r.Status == http.StatusNotFound && r.Code == "UserNotFound":
		return failure.KindReplicationLag
	case r.Status == http.StatusForbidden && r.Code == "AuthorizationFailed":
		// Azure's answer to a caller without the admin role.
		return failure.KindPermission
	case r.Status == http.StatusForbidden:
		return failure.KindNotSynced
	case r.Status == http.StatusBadRequest:
		switch r.Code {
		case "InvalidRequestContent", "MissingApiVersionParameter", "InvalidApiVersionParameter":
			return failure.KindOther
		}
		return failure.KindNotSynced
	}
	return failure.KindOther
}

// IsDuplicate reports whether err is Dataverse's duplicate-key error, which
// an association that already exists produces.
func IsDuplicate(err error) bool { return failure.KindOf(err) == failure.KindDuplicate }
