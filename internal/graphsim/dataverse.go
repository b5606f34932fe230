package graphsim

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The Dataverse tables the emulator serves. Property names are exact, as
// Dataverse's are; lookups are exposed as _<name>_value.
var (
	systemuserEntity = dvTable{set: "systemusers", key: "systemuserid", entity: entity{
		name: "Microsoft.Dynamics.CRM.systemuser", props: map[string]kind{
			"systemuserid": kGUID, "azureactivedirectoryobjectid": kGUID, "internalemailaddress": kString,
			"domainname": kString, "fullname": kString, "_businessunitid_value": kGUID, "isdisabled": kBool,
		}}}
	businessunitEntity = dvTable{set: "businessunits", key: "businessunitid", entity: entity{
		name: "Microsoft.Dynamics.CRM.businessunit", props: map[string]kind{
			"businessunitid": kGUID, "name": kString, "_parentbusinessunitid_value": kGUID,
		}}}
	roleEntity = dvTable{set: "roles", key: "roleid", entity: entity{
		name: "Microsoft.Dynamics.CRM.role", props: map[string]kind{
			"roleid": kGUID, "name": kString, "_businessunitid_value": kGUID, "_roletemplateid_value": kGUID,
		}}}
)

// dvTable is one entity set: its name, primary key and properties.
type dvTable struct {
	set, key string
	entity
}

func (su *systemUser) row() row {
	return row{
		"systemuserid": su.id, "azureactivedirectoryobjectid": su.aadID, "internalemailaddress": nilIfEmpty(su.email),
		"domainname": su.domainName, "fullname": nilIfEmpty(su.fullName), "_businessunitid_value": su.buID, "isdisabled": false,
	}
}

func (bu businessUnit) row() row {
	return row{"businessunitid": bu.id, "name": bu.name, "_parentbusinessunitid_value": nilIfEmpty(bu.parentID)}
}

func (r role) row() row {
	return row{"roleid": r.id, "name": r.name, "_businessunitid_value": r.buID, "_roletemplateid_value": r.templateID}
}

// dvBadQuery is Dataverse's error for an unusable query or URL.
func (c *call) dvBadQuery(msg string) { c.fail(http.StatusBadRequest, "0x80060888", msg) }

// query applies $filter, $select and $top to rows and answers with an
// OData collection. Unknown query options and properties are refused, as
// Dataverse refuses them.
func (c *call) query(t dvTable, rows []row) {
	q := c.r.URL.Query()
	for k := range q {
		if strings.HasPrefix(k, "$") && !contains([]string{"$filter", "$select", "$top"}, k) {
			c.dvBadQuery(fmt.Sprintf("The query parameter %s is not supported.", k))
			return
		}
	}
	if q.Has("$filter") {
		f, err := parseFilter(q.Get("$filter"), t.entity)
		if err != nil {
			c.dvBadQuery(err.Error())
			return
		}
		kept := rows[:0]
		for _, r := range rows {
			if f.eval(r, nil) {
				kept = append(kept, r)
			}
		}
		rows = kept
	}
	if q.Has("$top") {
		n, err := strconv.Atoi(q.Get("$top"))
		if err != nil || n < 0 {
			c.dvBadQuery(fmt.Sprintf("Invalid value '%s' for $top query option found. The $top query option requires a non-negative integer value.", q.Get("$top")))
			return
		}
		rows = rows[:min(n, len(rows))]
	}
	cols, ok := c.selectCols(t, q.Get("$select"))
	if !ok {
		return
	}
	out := make([]row, 0, len(rows))
	for _, r := range rows {
		out = append(out, project(r, t.key, cols))
	}
	ctx := c.dvBase() + "/$metadata#" + t.set
	if len(cols) > 0 {
		ctx += "(" + strings.Join(cols, ",") + ")"
	}
	c.reply(http.StatusOK, map[string]any{"@odata.context": ctx, "value": out})
}

// selectCols validates $select; empty means every column.
func (c *call) selectCols(t dvTable, sel string) ([]string, bool) {
	if strings.TrimSpace(sel) == "" {
		return nil, true
	}
	var cols []string
	for _, col := range strings.Split(sel, ",") {
		col = strings.TrimSpace(col)
		if _, ok := t.props[col]; !ok {
			c.dvBadQuery(fmt.Sprintf("Could not find a property named '%s' on type '%s'.", col, t.name))
			return nil, false
		}
		cols = append(cols, col)
	}
	return cols, true
}

// project keeps the selected columns; Dataverse always returns the key.
func project(r row, key string, cols []string) row {
	if cols == nil {
		return r
	}
	out := row{key: r[key]}
	for _, col := range cols {
		out[col] = r[col]
	}
	return out
}

// listSystemUsers is GET systemusers: empty for a user until it has synced.
func (c *call) listSystemUsers() {
	c.s.mu.Lock()
	dv := c.s.syncLocked(c.inst, c.now)
	var rows []row
	for _, su := range dv.rowsFor(c.r.URL.Query().Get("$filter")) {
		rows = append(rows, su.row())
	}
	c.s.mu.Unlock()
	c.query(systemuserEntity, rows)
}

// systemuserIndexed are the columns dvState's maps index.
var systemuserIndexed = map[string]bool{"azureactivedirectoryobjectid": true, "systemuserid": true}

// rowsFor are the rows that may match filter, in creation order: the
// ones the maps hold for its ids, or every row when it does not narrow
// (or does not parse: query reports that).
func (dv *dvState) rowsFor(filter string) []*systemUser {
	if filter == "" {
		return dv.order
	}
	f, err := parseFilter(filter, systemuserEntity.entity)
	if err != nil {
		return dv.order
	}
	ids, ok := candidates(f, systemuserIndexed)
	if !ok {
		return dv.order
	}
	return gather(ids, func(id string) []*systemUser {
		return []*systemUser{dv.byAAD[id], dv.byAAD[strings.ToLower(id)], dv.byID[id], dv.byID[strings.ToLower(id)]}
	}, func(su *systemUser) int { return su.seq })
}

// systemUserKey parses the key in systemusers(<id>).
func (c *call) systemUserKey() (string, bool) {
	id := c.param("id")
	if !isGUID(id) {
		c.dvBadQuery(fmt.Sprintf("Unrecognized 'Edm.Guid' literal '%s' in the key of systemusers.", id))
		return "", false
	}
	return strings.ToLower(id), true
}

// doesNotExist is Dataverse's 404 for a missing row.
func (c *call) doesNotExist(table, id string) {
	c.fail(http.StatusNotFound, "0x80040217", fmt.Sprintf("%s With Id = %s Does Not Exist", table, id))
}

// getSystemUser is GET systemusers(<id>).
func (c *call) getSystemUser() {
	id, ok := c.systemUserKey()
	if !ok {
		return
	}
	c.s.mu.Lock()
	su := c.s.syncLocked(c.inst, c.now).byID[id]
	var r row
	if su != nil {
		r = su.row()
	}
	c.s.mu.Unlock()
	if su == nil {
		c.doesNotExist("systemuser", id)
		return
	}
	cols, ok := c.selectCols(systemuserEntity, c.r.URL.Query().Get("$select"))
	if !ok {
		return
	}
	out := project(r, "systemuserid", cols)
	out["@odata.context"] = c.dvBase() + "/$metadata#systemusers/$entity"
	c.reply(http.StatusOK, out)
}

// systemUserPatch is the part of a systemuser guestflow updates.
type systemUserPatch struct {
	InternalEmailAddress *string `json:"internalemailaddress"`
}

func (*systemUserPatch) odataType() string { return "Microsoft.Dynamics.CRM.systemuser" }

// patchSystemUser is PATCH systemusers(<id>): the legacy email fix. A
// missing row is 404 (the emulator does not upsert systemusers).
func (c *call) patchSystemUser() {
	id, ok := c.systemUserKey()
	if !ok {
		return
	}
	var p systemUserPatch
	if !c.decode(&p, "internalemailaddress") {
		return
	}
	if p.InternalEmailAddress != nil {
		switch addr := *p.InternalEmailAddress; {
		case utf8.RuneCountInString(addr) > 100:
			c.fail(http.StatusBadRequest, "0x80044331", "A validation error occurred. The length of the 'internalemailaddress' attribute of the 'systemuser' entity exceeded the maximum allowed length of '100'.")
			return
		case addr != "" && !isBareAddress(addr):
			c.fail(http.StatusBadRequest, "0x80040203", fmt.Sprintf("The value '%s' of 'internalemailaddress' is not a valid email address.", addr))
			return
		}
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	su := c.s.syncLocked(c.inst, c.now).byID[id]
	if su == nil {
		c.doesNotExist("systemuser", id)
		return
	}
	if p.InternalEmailAddress != nil {
		su.email = *p.InternalEmailAddress
	}
	c.empty(http.StatusNoContent)
}

// listUserRoles is GET systemusers(<id>)/systemuserroles_association.
func (c *call) listUserRoles() {
	id, ok := c.systemUserKey()
	if !ok {
		return
	}
	c.s.mu.Lock()
	su := c.s.syncLocked(c.inst, c.now).byID[id]
	var rows []row
	if su != nil {
		for _, rid := range su.roles {
			rows = append(rows, c.inst.role(rid).row())
		}
	}
	c.s.mu.Unlock()
	if su == nil {
		c.doesNotExist("systemuser", id)
		return
	}
	c.query(roleEntity, rows)
}

// roleRef matches the role a reference names: …/roles(<guid>).
var roleRef = regexp.MustCompile(`(?i)/roles\(([0-9a-f-]{36})\)$`)

// associateRole is POST systemusers(<id>)/systemuserroles_association/$ref.
// Dataverse refuses a role of another business unit than the user's (roles
// are copied per business unit, so the name alone is not enough) and a role
// the user already has (duplicate key).
func (c *call) associateRole() {
	id, ok := c.systemUserKey()
	if !ok {
		return
	}
	var req refRequest
	if !c.decode(&req) {
		return
	}
	if req.ODataID == nil {
		c.dvBadQuery("The '@odata.id' property is required in a reference.")
		return
	}
	ref := *req.ODataID
	if i := strings.IndexAny(ref, "?#"); i >= 0 {
		ref = ref[:i]
	}
	m := roleRef.FindStringSubmatch(ref)
	if m == nil || !isGUID(m[1]) {
		c.dvBadQuery(fmt.Sprintf("The reference '%s' does not name a role: expected <url>/roles(<roleid>).", *req.ODataID))
		return
	}
	roleID := strings.ToLower(m[1])

	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	su := c.s.syncLocked(c.inst, c.now).byID[id]
	if su == nil {
		c.doesNotExist("systemuser", id)
		return
	}
	r := c.inst.role(roleID)
	if r == nil {
		c.doesNotExist("role", roleID)
		return
	}
	if r.buID != su.buID {
		c.fail(http.StatusBadRequest, "0x80040203", fmt.Sprintf(
			"The role %s (%s) belongs to business unit %s, but systemuser %s is in business unit %s. A user can only be given the roles of its own business unit.",
			r.id, r.name, r.buID, su.id, su.buID))
		return
	}
	if contains(su.roles, r.id) {
		c.fail(http.StatusBadRequest, "0x80040237", "Cannot insert duplicate key.")
		return
	}
	su.roles = append(su.roles, r.id)
	c.empty(http.StatusNoContent)
}

// listBusinessUnits is GET businessunits.
func (c *call) listBusinessUnits() {
	var rows []row
	for _, bu := range c.inst.businessUnits() {
		rows = append(rows, bu.row())
	}
	c.query(businessunitEntity, rows)
}

// listRoles is GET roles.
func (c *call) listRoles() {
	rows := make([]row, 0, len(c.inst.roleDefs))
	for _, r := range c.inst.roleDefs {
		rows = append(rows, r.row())
	}
	c.query(roleEntity, rows)
}

// whoAmI is GET WhoAmI: the application user guestflow acts as. Clients use
// it to check a connection.
func (c *call) whoAmI() {
	c.reply(http.StatusOK, map[string]any{
		"@odata.context": c.dvBase() + "/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
		"BusinessUnitId": c.inst.rootBU.id,
		"UserId":         c.inst.appUserID,
		"OrganizationId": c.inst.orgID,
	})
}

// roleNames lists a systemuser's role names, sorted.
func (in *instance) roleNames(su *systemUser) []string {
	names := []string{}
	for _, id := range su.roles {
		names = append(names, in.role(id).name)
	}
	sort.Strings(names)
	return names
}
