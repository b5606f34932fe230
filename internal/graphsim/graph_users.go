package graphsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// userEntity is what GET /users?$filter= may name. Graph matches property
// names and string values case-insensitively.
var userEntity = entity{name: "microsoft.graph.user", fold: true, props: map[string]kind{
	"id": kString, "mail": kString, "userPrincipalName": kString, "displayName": kString,
	"userType": kString, "givenName": kString, "surname": kString, "usageLocation": kString,
	"externalUserState": kString, "creationType": kString, "accountEnabled": kBool, "otherMails": kStrings,
}}

func (u *user) row() row {
	return row{
		"id": u.id, "mail": nilIfEmpty(u.mail), "userPrincipalName": u.upn, "displayName": nilIfEmpty(u.displayName),
		"userType": u.userType, "givenName": nilIfEmpty(u.givenName), "surname": nilIfEmpty(u.surname),
		"usageLocation": nilIfEmpty(u.usageLocation), "externalUserState": nilIfEmpty(u.externalState),
		"creationType": nilIfEmpty(u.creationType), "accountEnabled": true, "otherMails": u.otherMails,
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// graphUser is a user as Graph v1.0 returns it. $select is ignored: the
// default properties plus those guestflow reads are always returned.
type graphUser struct {
	Context                         string         `json:"@odata.context,omitempty"`
	ID                              string         `json:"id"`
	BusinessPhones                  []string       `json:"businessPhones"`
	DisplayName                     *string        `json:"displayName"`
	GivenName                       *string        `json:"givenName"`
	JobTitle                        *string        `json:"jobTitle"`
	Mail                            *string        `json:"mail"`
	MobilePhone                     *string        `json:"mobilePhone"`
	OfficeLocation                  *string        `json:"officeLocation"`
	PreferredLanguage               *string        `json:"preferredLanguage"`
	Surname                         *string        `json:"surname"`
	UserPrincipalName               string         `json:"userPrincipalName"`
	AccountEnabled                  bool           `json:"accountEnabled"`
	UserType                        string         `json:"userType"`
	UsageLocation                   *string        `json:"usageLocation"`
	OtherMails                      []string       `json:"otherMails"`
	ExternalUserState               *string        `json:"externalUserState"`
	ExternalUserStateChangeDateTime *string        `json:"externalUserStateChangeDateTime"`
	CreationType                    *string        `json:"creationType"`
	CreatedDateTime                 string         `json:"createdDateTime"`
	AssignedLicenses                []graphLicense `json:"assignedLicenses"`
}

type graphLicense struct {
	DisabledPlans []string `json:"disabledPlans"`
	SkuID         string   `json:"skuId"`
}

func (u *user) graph() graphUser {
	g := graphUser{
		ID: u.id, BusinessPhones: []string{}, DisplayName: nullable(u.displayName), GivenName: nullable(u.givenName),
		Mail: nullable(u.mail), Surname: nullable(u.surname), UserPrincipalName: u.upn, AccountEnabled: true,
		UserType: u.userType, UsageLocation: nullable(u.usageLocation), OtherMails: append([]string{}, u.otherMails...),
		ExternalUserState: nullable(u.externalState), CreationType: nullable(u.creationType),
		CreatedDateTime: rfc3339(u.created), AssignedLicenses: []graphLicense{},
	}
	if !u.externalStateChanged.IsZero() {
		g.ExternalUserStateChangeDateTime = nullable(rfc3339(u.externalStateChanged))
	}
	for _, l := range u.licenses {
		g.AssignedLicenses = append(g.AssignedLicenses, graphLicense{DisabledPlans: append([]string{}, l.disabledPlans...), SkuID: l.skuID})
	}
	return g
}

// listUsers is GET /users with $filter, $top and Graph's $skiptoken paging.
func (c *call) listUsers() {
	q := c.r.URL.Query()
	for k := range q {
		if strings.HasPrefix(k, "$") && !contains([]string{"$filter", "$select", "$top", "$skiptoken"}, k) {
			c.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Unrecognized query argument specified: '%s'.", k))
			return
		}
	}
	var filter expr
	if q.Has("$filter") {
		var err error
		if filter, err = parseFilter(q.Get("$filter"), userEntity); err != nil {
			c.fail(http.StatusBadRequest, "BadRequest", "Invalid filter clause: "+err.Error())
			return
		}
	}
	top := 100
	if q.Has("$top") {
		n, err := strconv.Atoi(q.Get("$top"))
		if err != nil || n < 1 || n > 999 {
			c.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive.", q.Get("$top")))
			return
		}
		top = n
	}
	skip := 0
	if q.Has("$skiptoken") {
		n, err := strconv.Atoi(q.Get("$skiptoken"))
		if err != nil || n < 0 {
			c.fail(http.StatusBadRequest, "Directory_InvalidSkipToken", fmt.Sprintf("The specified page token value '%s' is invalid.", q.Get("$skiptoken")))
			return
		}
		skip = n
	}

	c.s.mu.Lock()
	var found []graphUser
	for _, u := range c.s.st.usersFor(filter) {
		// A replica that has not seen a new user yet cannot find it.
		if c.s.lagging(u, c.now) {
			continue
		}
		if filter == nil || filter.eval(u.row(), nil) {
			found = append(found, u.graph())
		}
	}
	c.s.mu.Unlock()

	page := []graphUser{}
	if skip < len(found) {
		page = found[skip:min(len(found), skip+top)]
	}
	body := map[string]any{"@odata.context": c.base() + "/v1.0/$metadata#users", "value": page}
	if skip+top < len(found) {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("$skiptoken", strconv.Itoa(skip+top))
		body["@odata.nextLink"] = c.base() + "/v1.0/users?" + next.Encode()
	}
	c.reply(http.StatusOK, body)
}

// resourceNotFound is Graph's 404 for an unknown (or not yet replicated) object.
func (c *call) resourceNotFound(id string) {
	c.fail(http.StatusNotFound, "Request_ResourceNotFound", resourceMissing(id))
}

func resourceMissing(id string) string {
	return fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id)
}

// getUser is GET /users/{id | userPrincipalName}.
func (c *call) getUser() {
	c.s.mu.Lock()
	u := c.s.st.lookupUser(c.param("id"))
	var g graphUser
	if u != nil {
		g = u.graph()
	}
	c.s.mu.Unlock()
	if u == nil {
		c.resourceNotFound(c.param("id"))
		return
	}
	g.Context = c.base() + "/v1.0/$metadata#users/$entity"
	c.reply(http.StatusOK, g)
}

// userPatch is the part of microsoft.graph.user guestflow updates.
type userPatch map[string]json.RawMessage

func (userPatch) odataType() string { return "microsoft.graph.user" }

// patchUser is PATCH /users/{id}: names and usageLocation, validated as
// Entra validates them (lengths, ISO 3166-1 alpha-2), all or nothing.
func (c *call) patchUser() {
	props := []string{"givenName", "surname", "displayName", "usageLocation"}
	var p userPatch
	if !c.decode(&p, props...) {
		return
	}
	set := map[string]string{}
	for given, raw := range p {
		name, ok := canonical(props, given, true)
		if !ok { // an @-annotation such as @odata.type
			continue
		}
		var v *string
		if err := json.Unmarshal(raw, &v); err != nil {
			c.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Cannot convert the literal '%s' to the expected type 'Edm.String'.", raw))
			return
		}
		val := ""
		if v != nil {
			val = *v
		}
		if msg := checkUserProperty(name, val); msg != "" {
			c.fail(http.StatusBadRequest, "Request_BadRequest", msg)
			return
		}
		if name == "usageLocation" {
			val = strings.ToUpper(val)
		}
		set[name] = val
	}

	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	u := c.s.st.lookupUser(c.param("id"))
	if u == nil || c.s.lagging(u, c.now) {
		c.resourceNotFound(c.param("id"))
		return
	}
	if loc, ok := set["usageLocation"]; ok && loc == "" && len(u.licenses) > 0 {
		c.fail(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'usageLocation' of resource 'User': a user with assigned licenses needs a usage location.")
		return
	}
	for name, val := range set {
		switch name {
		case "givenName":
			u.givenName = val
		case "surname":
			u.surname = val
		case "displayName":
			u.displayName = val
		case "usageLocation":
			u.usageLocation = val
		}
	}
	c.empty(http.StatusNoContent)
}

// checkUserProperty returns Entra's complaint about a value, or "".
func checkUserProperty(name, val string) string {
	invalid := fmt.Sprintf("Invalid value specified for property '%s' of resource 'User'.", name)
	switch name {
	case "givenName", "surname":
		if utf8.RuneCountInString(val) > 64 {
			return invalid
		}
	case "displayName":
		if val == "" || utf8.RuneCountInString(val) > 256 {
			return invalid
		}
	case "usageLocation":
		if val != "" && !isCountry(strings.ToUpper(val)) {
			return invalid
		}
	}
	return ""
}

// licenseDetails is GET /users/{id}/licenseDetails.
func (c *call) licenseDetails() {
	c.s.mu.Lock()
	u := c.s.st.lookupUser(c.param("id"))
	var details []map[string]any
	if u != nil {
		details = []map[string]any{}
		for _, l := range u.licenses {
			part := ""
			if k := c.s.st.skuByID(l.skuID); k != nil {
				part = k.part
			}
			details = append(details, map[string]any{
				"id": derivedID("licenseDetails", u.id, l.skuID), "skuId": l.skuID, "skuPartNumber": part, "servicePlans": []any{},
			})
		}
	}
	c.s.mu.Unlock()
	if u == nil {
		c.resourceNotFound(c.param("id"))
		return
	}
	c.reply(http.StatusOK, map[string]any{
		"@odata.context": fmt.Sprintf("%s/v1.0/$metadata#users('%s')/licenseDetails", c.base(), url.PathEscape(c.param("id"))),
		"value":          details,
	})
}
