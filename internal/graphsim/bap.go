package graphsim

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// This file is the one Power Platform admin API (BAP,
// https://api.bap.microsoft.com) call guestflow makes: addUser, which forces
// Dataverse's user sync for one Entra user instead of waiting for the
// background sync (MICROSOFT.md, "Dataverse Web API"). The emulator serves
// it below its own URL, so config.Tenant.PowerPlatformURL is URL().
//
// What is Microsoft's and what is a guess:
//   - Path, body {"ObjectId": "<Entra object id>"} and the token audience
//     https://service.powerapps.com/ (scope
//     https://service.powerapps.com//.default, double slash) are Microsoft's.
//     Property names match case-insensitively: Microsoft's own clients send
//     "ObjectId" (PowerShell Add-AdminPowerAppsSyncUser) and "objectId"
//     (terraform-provider-power-platform).
//   - api-version is required, as on every ARM-style API; the values seen
//     in Microsoft's clients are 2019-05-01, 2020-10-01, 2021-04-01 and
//     2023-06-01, so any date-shaped value is accepted.
//   - Not eligible (no license of the tenant, or not in the environment's
//     security group) is a GUESS: 403 with code "userNotLicensed" or
//     "userNotInSecurityGroup". Microsoft documents neither status nor body.
//     What is known: terraform-provider-power-platform retries addUser every
//     10 s for up to 9 minutes while the error text contains
//     "userNotLicensed" (license assignment reaches the admin API
//     asynchronously), so that code is spelled exactly so, and a client must
//     tell this case apart by the code, not by the status. 403 rather than
//     400 because the request is well formed; it is the principal that may
//     not (yet) enter the environment.
//   - 401 codes (AuthenticationFailed, InvalidAuthenticationToken,
//     InvalidAuthenticationTokenAudience, ExpiredAuthenticationToken,
//     InvalidAuthenticationTokenTenant) and 404 EnvironmentNotFound follow
//     ARM, which the admin API is modelled on; UserNotFound is a guess.
//   - The 200 body is the emulator's own: Microsoft's clients expect 200
//     and read nothing from it (terraform's mocks answer an empty body), so
//     guestflow must not depend on it and should look the systemuser up in
//     Dataverse afterwards, as it would after the background sync.

// PowerAppsAudience is the audience of tokens for the Power Platform admin
// API. Clients request scope PowerAppsAudience + "/.default".
const PowerAppsAudience = "https://service.powerapps.com/"

// powerAppsResource recognises the admin API's resource in a scope (the
// part before "/.default"). "https://service.powerapps.com/" (from the
// documented double-slash scope) gets the audience the API accepts; the
// single-slash spelling names the resource without its trailing slash,
// which Entra issues as such and the API refuses, so the mistake shows here.
func powerAppsResource(resource string) (string, bool) {
	switch {
	case strings.EqualFold(resource, PowerAppsAudience):
		return PowerAppsAudience, true
	case strings.EqualFold(resource, strings.TrimSuffix(PowerAppsAudience, "/")):
		return strings.TrimSuffix(PowerAppsAudience, "/"), true
	}
	return "", false
}

// isBAPPath tells admin API calls (any case: ARM paths are
// case-insensitive).
func isBAPPath(p string) bool {
	lp, prefix := strings.ToLower(p), strings.ToLower(bapPrefix)
	return lp == prefix || strings.HasPrefix(lp, prefix+"/")
}

// EnvironmentID is the Power Platform environment id of an instance, ""
// for an unknown instance.
func (s *Sim) EnvironmentID(instance string) string {
	if in := s.instances[instance]; in != nil {
		return in.envID
	}
	return ""
}

// instanceByEnv finds the instance an environment id names.
func (s *Sim) instanceByEnv(envID string) *instance {
	for _, in := range s.instances {
		if strings.EqualFold(in.envID, envID) {
			return in
		}
	}
	return nil
}

// bapUnauthorized answers a refused token the way ARM-style APIs do.
func (c *call) bapUnauthorized(authority string, err error, aud string) {
	code, msg := "InvalidAuthenticationToken", "The access token is invalid."
	switch err {
	case errTokenEmpty:
		code, msg = "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
	case errTokenExpired:
		code, msg = "ExpiredAuthenticationToken", "The access token has expired: its expiry time is earlier than the current time."
	case errTokenTenant:
		code, msg = "InvalidAuthenticationTokenTenant", fmt.Sprintf("The access token is from the wrong issuer. It must match the tenant '%s' and application '%s'.", c.s.opts.TenantID, c.s.opts.ClientID)
	case errTokenAudience:
		code, msg = "InvalidAuthenticationTokenAudience", fmt.Sprintf(
			"The access token has been obtained for the wrong audience or resource '%s'. It should exactly match with one of the allowed audiences '%s' (request scope '%s/.default', with two slashes).",
			aud, PowerAppsAudience, PowerAppsAudience)
	}
	c.w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization_uri="%s", error="invalid_token", error_description="%s"`, authority, code))
	c.fail(http.StatusUnauthorized, code, msg)
}

// apiVersionShape is a date, optionally with a suffix such as -preview.
var apiVersionShape = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})(-[A-Za-z]+)?$`)

// checkAPIVersion requires the api-version query parameter, as ARM-style
// APIs do, and accepts any date-shaped value.
func (c *call) checkAPIVersion() bool {
	var v string
	found := false
	for k, vals := range c.r.URL.Query() {
		if strings.EqualFold(k, "api-version") && len(vals) > 0 {
			v, found = vals[0], true
			break
		}
	}
	if !found || v == "" {
		c.fail(http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
		return false
	}
	m := apiVersionShape.FindStringSubmatch(v)
	if m != nil {
		if _, err := time.Parse("2006-01-02", m[1]); err == nil {
			return true
		}
	}
	c.fail(http.StatusBadRequest, "InvalidApiVersionParameter", fmt.Sprintf(
		"The api-version '%s' is invalid. The supported versions are '2019-05-01,2020-10-01,2021-04-01,2023-06-01'.", v))
	return false
}

// addUserRequest is the body of addUser.
type addUserRequest struct {
	ObjectID *string `json:"ObjectId"`
}

func (*addUserRequest) odataType() string { return "AddUserRequest" }

// AddUserResult is the emulator's 200 body for addUser (see the file
// comment: Microsoft's is not documented; do not depend on it).
type AddUserResult struct {
	EnvironmentID  string `json:"environmentId"`
	ObjectID       string `json:"objectId"`
	SystemUserID   string `json:"systemUserId"`
	AlreadyExisted bool   `json:"alreadyExisted"`
}

// bapAddUser is POST /providers/Microsoft.BusinessAppPlatform/scopes/admin/
// environments/{id}/addUser: checks, in order, the environment, the body,
// the user (replication lag hides a fresh user, as from Graph), its
// eligibility (a license of the tenant; membership of the environment's
// security group if it has one), then creates the systemuser the
// background sync would have created — same id, same email rules — unless
// it exists. Eligibility is checked on every call, so calling again is
// idempotent only while the user stays eligible.
func (c *call) bapAddUser() {
	envID := c.param("id")
	in := c.s.instanceByEnv(envID)
	if in == nil {
		c.fail(http.StatusNotFound, "EnvironmentNotFound", fmt.Sprintf("The environment '%s' could not be found in the tenant '%s'.", envID, c.s.opts.TenantID))
		return
	}
	var req addUserRequest
	if !c.decode(&req, "ObjectId") {
		return
	}
	switch {
	case req.ObjectID == nil || *req.ObjectID == "":
		c.fail(http.StatusBadRequest, "InvalidRequestContent", "The request content is missing the required property 'ObjectId'.")
		return
	case !isGUID(*req.ObjectID):
		c.fail(http.StatusBadRequest, "InvalidRequestContent", fmt.Sprintf("The value '%s' of property 'ObjectId' is not a valid GUID.", *req.ObjectID))
		return
	}
	objectID := *req.ObjectID

	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	u := c.s.st.byID[strings.ToLower(objectID)]
	if u == nil || c.s.lagging(u, c.now) {
		c.fail(http.StatusNotFound, "UserNotFound", fmt.Sprintf("The user with object id '%s' was not found in the tenant '%s'.", objectID, c.s.opts.TenantID))
		return
	}
	if len(u.licenses) == 0 {
		c.fail(http.StatusForbidden, "userNotLicensed", fmt.Sprintf(
			"The user '%s' is not licensed: assign the user a license of the tenant that gives access to environment '%s', then retry (license assignments can take minutes to reach Power Platform).",
			u.id, in.envID))
		return
	}
	if in.groupID != "" {
		if _, member := c.s.st.groups[in.groupID].members[u.id]; !member {
			c.fail(http.StatusForbidden, "userNotInSecurityGroup", fmt.Sprintf(
				"The user '%s' is not a member of the security group '%s' of environment '%s': add the user to the group, then retry.",
				u.id, in.groupID, in.envID))
			return
		}
	}
	dv := c.s.syncLocked(in, c.now)
	su, existed := dv.byAAD[u.id], true
	if su == nil {
		su, existed = newSystemUser(in, u), false
		dv.add(su)
	}
	c.reply(http.StatusOK, AddUserResult{EnvironmentID: in.envID, ObjectID: u.id, SystemUserID: su.id, AlreadyExisted: existed})
}
