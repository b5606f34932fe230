package graphsim

import (
	"fmt"
	"net/http"
	"time"
)

// subscribedSkus is GET /subscribedSkus: free seats = enabled − consumed.
func (c *call) subscribedSkus() {
	c.s.mu.Lock()
	skus := []map[string]any{}
	for _, k := range c.s.st.skus {
		skus = append(skus, map[string]any{
			"accountId":        c.s.opts.TenantID,
			"accountName":      "guestflowdev",
			"appliesTo":        "User",
			"capabilityStatus": "Enabled",
			"consumedUnits":    k.consumed,
			"id":               c.s.opts.TenantID + "_" + k.skuID,
			"skuId":            k.skuID,
			"skuPartNumber":    k.part,
			"subscriptionIds":  []string{derivedID("subscription", k.skuID)},
			"prepaidUnits":     map[string]int{"enabled": k.enabled, "suspended": 0, "warning": 0, "lockedOut": 0},
			"servicePlans":     []any{},
		})
	}
	c.s.mu.Unlock()
	c.reply(http.StatusOK, map[string]any{"@odata.context": c.base() + "/v1.0/$metadata#subscribedSkus", "value": skus})
}

// assignRequest is the body of assignLicense; both lists are required.
type assignRequest struct {
	AddLicenses    *[]addLicense `json:"addLicenses"`
	RemoveLicenses *[]string     `json:"removeLicenses"`
}

type addLicense struct {
	SkuID         *string  `json:"skuId"`
	DisabledPlans []string `json:"disabledPlans"`
}

func (*assignRequest) odataType() string { return "microsoft.graph.assignLicense" }

// assignLicense is POST /users/{id}/assignLicense, with Entra's
// preconditions in its order: the user exists, the SKUs belong to the
// tenant, the user has a usage location, a seat is free. Re-adding an
// assigned SKU is a no-op that consumes no seat. All or nothing.
func (c *call) assignLicense() {
	var req assignRequest
	if !c.decode(&req, "addLicenses", "removeLicenses") {
		return
	}
	for _, f := range []struct {
		name    string
		missing bool
	}{{"addLicenses", req.AddLicenses == nil}, {"removeLicenses", req.RemoveLicenses == nil}} {
		if f.missing {
			c.fail(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid value specified for property '%s' of resource 'User': it is required (send [] for none).", f.name))
			return
		}
	}
	bad := func(format string, args ...any) {
		c.fail(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf(format, args...))
	}

	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	st := c.s.st
	u := st.lookupUser(c.param("id"))
	if u == nil || c.s.lagging(u, c.now) {
		c.resourceNotFound(c.param("id"))
		return
	}
	adds := map[string]addLicense{}
	var order []string
	for _, a := range *req.AddLicenses {
		if a.SkuID == nil || !isGUID(*a.SkuID) {
			bad("Invalid value specified for property 'skuId' of resource 'AssignedLicense'.")
			return
		}
		k := st.skuByID(*a.SkuID)
		if k == nil {
			bad("License %s does not correspond to a valid company License.", *a.SkuID)
			return
		}
		if len(a.DisabledPlans) > 0 { // the emulated SKUs have no service plans to disable
			bad("Service plan %s is not a service plan of SKU %s.", a.DisabledPlans[0], k.skuID)
			return
		}
		if _, dup := adds[k.skuID]; !dup {
			order = append(order, k.skuID)
		}
		adds[k.skuID] = a
	}
	removes := map[string]bool{}
	for _, id := range *req.RemoveLicenses {
		k := st.skuByID(id)
		if k == nil {
			bad("License %s does not correspond to a valid company License.", id)
			return
		}
		if _, both := adds[k.skuID]; both {
			bad("License %s cannot be added and removed in the same request.", id)
			return
		}
		if !u.hasLicense(k.skuID) {
			bad("User does not have a corresponding license %s to remove.", id)
			return
		}
		removes[k.skuID] = true
	}
	var fresh []*sku
	for _, id := range order {
		if !u.hasLicense(id) {
			fresh = append(fresh, st.skuByID(id))
		}
	}
	if len(fresh) > 0 && u.usageLocation == "" {
		bad("License assignment cannot be done for user with invalid usage location.")
		return
	}
	for _, k := range fresh {
		if k.enabled-k.consumed < 1 {
			bad("Subscription with SKU %s does not have any available licenses.", k.skuID)
			return
		}
	}

	hadAny := len(u.licenses) > 0
	kept := u.licenses[:0]
	for _, l := range u.licenses {
		if removes[l.skuID] {
			st.skuByID(l.skuID).consumed--
			continue
		}
		kept = append(kept, l)
	}
	u.licenses = kept
	for _, k := range fresh {
		k.consumed++
		u.licenses = append(u.licenses, assignedLicense{skuID: k.skuID, disabledPlans: []string{}})
	}
	switch {
	case !hadAny && len(u.licenses) > 0:
		u.licensedAt = c.now
	case len(u.licenses) == 0:
		u.licensedAt = time.Time{}
	}
	g := u.graph()
	g.Context = c.base() + "/v1.0/$metadata#users/$entity"
	c.reply(http.StatusOK, g)
}
