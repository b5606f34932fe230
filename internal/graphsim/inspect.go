package graphsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// This file is the inspection API (docs/emulator.md): plain JSON without
// authentication, for tests and people, plus the same data as Go methods.
// Field names are the contract's; do not rename them.

// User is one entry of GET /_sim/users. InvitationMessagesSent counts
// invitations that asked Microsoft to send its own mail, which guestflow
// never should.
type User struct {
	ID                     string   `json:"id"`
	Mail                   string   `json:"mail"`
	UserPrincipalName      string   `json:"userPrincipalName"`
	UserType               string   `json:"userType"`
	GivenName              string   `json:"givenName"`
	Surname                string   `json:"surname"`
	DisplayName            string   `json:"displayName"`
	UsageLocation          string   `json:"usageLocation"`
	ExternalUserState      string   `json:"externalUserState"`
	AssignedLicenses       []string `json:"assignedLicenses"` // SKU part numbers
	Groups                 []string `json:"groups"`           // group ids
	InvitationMessagesSent int      `json:"invitationMessagesSent"`
}

// Instance is one entry of GET /_sim/instances.
type Instance struct {
	Name              string   `json:"name"`
	URL               string   `json:"url"`
	SecurityGroupID   *string  `json:"securityGroupId"` // null without a group
	EnvironmentID     string   `json:"environmentId"`   // Power Platform environment id, for addUser
	License           string   `json:"license"`
	Roles             []string `json:"roles"`
	LegacyEmailUpdate bool     `json:"legacyEmailUpdate"`
}

// SystemUser is one entry of GET /_sim/instances/{instance}/systemusers.
type SystemUser struct {
	SystemUserID                 string   `json:"systemuserid"`
	AzureActiveDirectoryObjectID string   `json:"azureactivedirectoryobjectid"`
	InternalEmailAddress         string   `json:"internalemailaddress"`
	Roles                        []string `json:"roles"` // role names
}

// SKU is one entry of GET /_sim/skus.
type SKU struct {
	SkuPartNumber string `json:"skuPartNumber"`
	SkuID         string `json:"skuId"`
	Enabled       int    `json:"enabled"`
	Consumed      int    `json:"consumed"`
}

// Users lists every user in creation order.
func (s *Sim) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []User{}
	for _, u := range s.st.users {
		v := User{
			ID: u.id, Mail: u.mail, UserPrincipalName: u.upn, UserType: u.userType, GivenName: u.givenName,
			Surname: u.surname, DisplayName: u.displayName, UsageLocation: u.usageLocation,
			ExternalUserState: u.externalState, AssignedLicenses: []string{}, Groups: s.st.groupsOf(u),
			InvitationMessagesSent: u.invitationMessagesSent,
		}
		for _, l := range u.licenses {
			v.AssignedLicenses = append(v.AssignedLicenses, s.st.skuByID(l.skuID).part)
		}
		out = append(out, v)
	}
	return out
}

// Instances lists the environments, sorted by name. URLs need Start.
func (s *Sim) Instances() []Instance {
	out := []Instance{}
	for _, name := range s.instanceNames() {
		in := s.instances[name]
		out = append(out, Instance{
			Name: name, URL: s.URL() + "/instances/" + name, SecurityGroupID: nullable(in.groupID), EnvironmentID: in.envID,
			License: in.license, Roles: append([]string{}, in.roles...), LegacyEmailUpdate: in.legacy,
		})
	}
	return out
}

// Mails lists sent mail in sending order.
func (s *Sim) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail{}, s.st.mails...)
}

// SystemUsers lists an environment's synced users as of now; false if the
// instance does not exist.
func (s *Sim) SystemUsers(instanceName string) ([]SystemUser, bool) {
	in := s.instances[instanceName]
	if in == nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []SystemUser{}
	for _, su := range s.syncLocked(in, s.now()).order {
		out = append(out, SystemUser{
			SystemUserID: su.id, AzureActiveDirectoryObjectID: su.aadID,
			InternalEmailAddress: su.email, Roles: in.roleNames(su),
		})
	}
	return out, true
}

// Stats returns the request counters.
func (s *Sim) Stats() Stats {
	out := s.stats.snapshot()
	for id, sc := range scopes {
		v := out.Scopes[sc.key]
		v.Limit = s.budgets.limits[id].String()
		if scopeID(id) == scopeMailConcurrency && s.budgets.mailConcurrency > 0 {
			v.Limit = strconv.Itoa(s.budgets.mailConcurrency)
		}
		out.Scopes[sc.key] = v
	}
	return out
}

// SKUs lists the subscribed SKUs with their seats.
func (s *Sim) SKUs() []SKU {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []SKU{}
	for _, k := range s.st.skus {
		out = append(out, SKU{SkuPartNumber: k.part, SkuID: k.skuID, Enabled: k.enabled, Consumed: k.consumed})
	}
	return out
}

// SetSeats changes a SKU's enabled units, e.g. to 0 to test "no free seat".
func (s *Sim) SetSeats(skuPartNumber string, enabled int) (SKU, error) {
	if enabled < 0 {
		return SKU{}, fmt.Errorf("enabled must not be negative, got %d", enabled)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.st.skuByPart(skuPartNumber)
	if k == nil {
		return SKU{}, fmt.Errorf("no SKU with part number %q", skuPartNumber)
	}
	k.enabled = enabled
	return SKU{SkuPartNumber: k.part, SkuID: k.skuID, Enabled: k.enabled, Consumed: k.consumed}, nil
}

// Reset returns the tenant to its seeded state and zeroes the counters and
// budgets, so tests can share one emulator. Issued tokens stay valid.
func (s *Sim) Reset() {
	st := s.seedState()
	s.mu.Lock()
	s.st = st
	s.mu.Unlock()
	s.stats.reset()
	s.budgets.reset()
	s.protection.reset()
}

// inspectRoutes serves the methods above over HTTP.
func (s *Sim) inspectRoutes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sim/users", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Users()) })
	mux.HandleFunc("GET /_sim/instances", func(w http.ResponseWriter, r *http.Request) {
		list := s.Instances()
		if s.URL() == "" { // mounted elsewhere: name instances after the request's host
			for i := range list {
				list[i].URL = origin(r) + list[i].URL
			}
		}
		writeJSON(w, 200, list)
	})
	mux.HandleFunc("GET /_sim/mail", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Mails()) })
	mux.HandleFunc("GET /_sim/instances/{instance}/systemusers", func(w http.ResponseWriter, r *http.Request) {
		list, ok := s.SystemUsers(r.PathValue("instance"))
		if !ok {
			simError(w, http.StatusNotFound, fmt.Sprintf("no instance %q", r.PathValue("instance")))
			return
		}
		writeJSON(w, 200, list)
	})
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Stats()) })
	mux.HandleFunc("GET /_sim/skus", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.SKUs()) })
	mux.HandleFunc("POST /_sim/skus/{sku}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Enabled *int `json:"enabled"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.Enabled == nil {
			simError(w, http.StatusBadRequest, `send {"enabled": <seats>}`)
			return
		}
		k, err := s.SetSeats(r.PathValue("sku"), *body.Enabled)
		switch {
		case err != nil && strings.HasPrefix(err.Error(), "no SKU"):
			simError(w, http.StatusNotFound, err.Error())
		case err != nil:
			simError(w, http.StatusBadRequest, err.Error())
		default:
			writeJSON(w, 200, k)
		}
	})
	mux.HandleFunc("POST /_sim/reset", func(w http.ResponseWriter, r *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/redeem/{id}", s.handleRedeem)
	return mux
}

func simError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": http.StatusText(status), "message": msg}})
}
