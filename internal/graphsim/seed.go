package graphsim

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// The seeded tenant. Ids are fixed so that tests and people can name them.
const (
	TenantDomain   = "guestflowdev.onmicrosoft.com"
	SenderAddress  = "onboarding@" + TenantDomain
	SenderUserID   = "5e4d3c2b-0000-4000-8000-00000000a001"
	MeganAddress   = "megan.bowen@" + TenantDomain
	MeganOtherMail = "megan@fabrikam.example"
	MeganUserID    = "5e4d3c2b-0000-4000-8000-00000000a002"
	SalesGroupID   = "5a1e5000-0000-4000-8000-00000000b001"
)

// Power Platform environment ids of the seeded instances, what the admin
// API (BAP) names them by. Config() leaves instances' environmentId empty
// so that the normal path is the delayed user sync; set one of these to
// exercise the forced sync (addUser).
const (
	SalesEnvironmentID   = "e5a1e500-0000-4000-8000-00000000c001"
	ServiceEnvironmentID = "e5e7f1ce-0000-4000-8000-00000000c002"
	LegacyEnvironmentID  = "e1e6ac70-0000-4000-8000-00000000c003"
)

// SKU ids from Microsoft's licensing service plan reference (MICROSOFT.md).
const (
	SkuPlan1           = "ea126fc5-a19e-42e2-a731-da9d437bffcf" // DYN365_ENTERPRISE_PLAN1
	SkuSales           = "1e1a282c-9c54-43a2-9310-98ef728faace" // DYN365_ENTERPRISE_SALES
	SkuCustomerService = "749742bf-0d37-4158-a120-33567104deeb" // DYN365_ENTERPRISE_CUSTOMER_SERVICE
	SkuTeamMembers     = "8e7a3d30-d97d-43ab-837c-d7701cef83dc" // DYN365_ENTERPRISE_TEAM_MEMBERS
)

// idSpace names every id the emulator derives (users it creates, business
// units, roles, systemusers), so a rerun produces the same ids.
var idSpace = uuid.MustParse("6a1b2c3d-5151-4e4e-9a9a-00000000d365")

func derivedID(parts ...string) string {
	return uuid.NewSHA1(idSpace, []byte(strings.ToLower(strings.Join(parts, "\x00")))).String()
}

// instance is one emulated Dynamics 365 environment: configuration, business
// units and roles, which never change at run time.
type instance struct {
	name, groupID, license string
	envID                  string   // Power Platform environment id
	roles                  []string // configured for guestflow
	legacy                 bool
	rootBU, childBU        businessUnit
	roleDefs               []role // every role of every business unit
	appUserID, orgID       string
}

type businessUnit struct{ id, name, parentID string }

// role is a security role of one business unit. templateID is the role
// template it was made from, the same in every business unit and every
// environment for Dataverse's built-in roles.
type role struct{ id, name, buID, templateID string }

// SystemAdministratorTemplateID is the role template of Dataverse's System
// Administrator role, which holds every privilege. Copies of the role keep
// the template, whatever they are renamed to.
const SystemAdministratorTemplateID = "627090ff-40a3-4053-8790-584edc5be201"

// grantableRoles names the instance's roles but System Administrator, in
// the order they were seeded.
func (in *instance) grantableRoles() []string {
	var out []string
	for _, r := range in.roleDefs {
		if r.buID == in.rootBU.id && r.templateID != SystemAdministratorTemplateID {
			out = append(out, r.name)
		}
	}
	return out
}

func (in *instance) businessUnits() []businessUnit { return []businessUnit{in.rootBU, in.childBU} }

func (in *instance) role(id string) *role {
	for i := range in.roleDefs {
		if strings.EqualFold(in.roleDefs[i].id, id) {
			return &in.roleDefs[i]
		}
	}
	return nil
}

// seedInstances builds sales, service and legacy (docs/emulator.md). Every
// environment has a root and a child business unit carrying the same role
// names under different ids, as Dataverse copies roles into each business
// unit; a client that resolves a role without its business unit picks the
// wrong copy and fails here.
func seedInstances() map[string]*instance {
	specs := []struct {
		name, env, group, license, role string
		legacy                          bool
	}{
		{"sales", SalesEnvironmentID, SalesGroupID, "DYN365_ENTERPRISE_SALES", "Salesperson", false},
		{"service", ServiceEnvironmentID, "", "DYN365_ENTERPRISE_CUSTOMER_SERVICE", "Customer Service Representative", false},
		{"legacy", LegacyEnvironmentID, "", "DYN365_ENTERPRISE_PLAN1", "Basic User", true},
	}
	out := map[string]*instance{}
	for _, sp := range specs {
		in := &instance{
			name: sp.name, envID: sp.env, groupID: sp.group, license: sp.license, roles: []string{sp.role}, legacy: sp.legacy,
			appUserID: derivedID("appuser", sp.name),
			orgID:     derivedID("organization", sp.name),
		}
		in.rootBU = businessUnit{id: derivedID("bu", sp.name, "root"), name: "guestflowdev-" + sp.name}
		in.childBU = businessUnit{id: derivedID("bu", sp.name, "partners"), name: "Partners", parentID: in.rootBU.id}
		for _, bu := range in.businessUnits() {
			for _, name := range []string{sp.role, "System Administrator", "Sales Manager"} {
				template := derivedID("roletemplate", name)
				if name == "System Administrator" {
					template = SystemAdministratorTemplateID
				}
				in.roleDefs = append(in.roleDefs, role{id: derivedID("role", sp.name, bu.name, name), name: name, buID: bu.id, templateID: template})
			}
		}
		out[sp.name] = in
	}
	return out
}

// instanceNames lists the instances sorted by name.
func (s *Sim) instanceNames() []string {
	names := make([]string, 0, len(s.instances))
	for n := range s.instances {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// seedState is the tenant as it is before any call: the sender mailbox, one
// ordinary member (Megan) with an alternate address for otherMails filters,
// the sales security group and the four Dynamics 365 SKUs.
func (s *Sim) seedState() *state {
	created := s.now().Add(-365 * 24 * time.Hour)
	st := &state{
		byID:        map[string]*user{},
		byUPN:       map[string]*user{},
		groups:      map[string]*group{},
		invitations: map[string]*invitation{},
		inviteCount: map[string]int{},
		dataverse:   map[string]*dvState{},
	}
	st.addUser(&user{
		id: SenderUserID, upn: SenderAddress, mail: SenderAddress,
		displayName: "Guestflow Onboarding", userType: "Member", usageLocation: "US",
		created: created, mailbox: true, otherMails: []string{},
	})
	st.addUser(&user{
		id: MeganUserID, upn: MeganAddress, mail: MeganAddress,
		displayName: "Megan Bowen", givenName: "Megan", surname: "Bowen", userType: "Member", usageLocation: "US",
		created: created, mailbox: true, otherMails: []string{MeganOtherMail},
	})
	st.groups[SalesGroupID] = &group{id: SalesGroupID, displayName: "guestflow sales users", members: map[string]time.Time{}}
	for _, k := range []struct{ part, id string }{
		{"DYN365_ENTERPRISE_PLAN1", SkuPlan1},
		{"DYN365_ENTERPRISE_SALES", SkuSales},
		{"DYN365_ENTERPRISE_CUSTOMER_SERVICE", SkuCustomerService},
		{"DYN365_ENTERPRISE_TEAM_MEMBERS", SkuTeamMembers},
	} {
		st.skus = append(st.skus, &sku{skuID: k.id, part: k.part, enabled: s.seats})
	}
	for name := range s.instances {
		st.dataverse[name] = &dvState{byAAD: map[string]*systemUser{}, byID: map[string]*systemUser{}, pending: slices.Clone(st.users)}
	}
	return st
}

func sortStrings(s []string) { sort.Strings(s) }
