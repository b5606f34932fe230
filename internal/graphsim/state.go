package graphsim

import (
	"slices"
	"strings"
	"time"
)

// state is everything the API calls change. One mutex (Sim.mu) guards it:
// the emulator's load is small and one lock keeps every precondition check
// and its write atomic, which is what Entra and Dataverse promise.
type state struct {
	users []*user          // creation order
	byID  map[string]*user // lower-case id
	byUPN map[string]*user // lower-case userPrincipalName
	// byValue finds users by any of the properties userIndexed names,
	// lower-cased, for $filter (usersFor).
	byValue map[string][]*user
	groups  map[string]*group
	skus    []*sku

	invitations map[string]*invitation
	inviteCount map[string]int // per lower-case address, for deterministic invitation ids
	mails       []Mail

	dataverse map[string]*dvState // per instance
}

// user is an Entra user object.
type user struct {
	// seq is the user's place in state.users.
	seq                    int
	id, upn, mail          string
	displayName            string
	givenName, surname     string
	usageLocation          string
	userType               string // Member or Guest
	creationType           string // Invitation for guests
	externalState          string // PendingAcceptance, Accepted; empty for members
	externalStateChanged   time.Time
	otherMails             []string
	created                time.Time
	mailbox                bool // only members with Exchange can send mail
	licenses               []assignedLicense
	licensedAt             time.Time // when the user last went from no license to some
	invitationMessagesSent int
}

type assignedLicense struct {
	skuID         string
	disabledPlans []string
}

func (u *user) hasLicense(skuID string) bool {
	for _, l := range u.licenses {
		if strings.EqualFold(l.skuID, skuID) {
			return true
		}
	}
	return false
}

// group is an Entra security group; members maps user id to when it was added.
type group struct {
	id, displayName string
	members         map[string]time.Time
}

// sku is one subscribed SKU of the tenant.
type sku struct {
	skuID, part       string
	enabled, consumed int
}

// invitation is one POST /invitations; its redeem URL points back at the
// emulator so a person (or test) can accept it.
type invitation struct {
	id, userID, redirectURL string
}

// dvState is one Dataverse environment's synced users.
type dvState struct {
	byAAD map[string]*systemUser // by Entra object id
	byID  map[string]*systemUser // by systemuserid
	order []*systemUser
	// pending are the tenant's users without a row here yet, in
	// creation order: the ones the sync looks at.
	pending []*user
}

// systemUser is a Dataverse systemuser row.
type systemUser struct {
	// seq is the row's place in dvState.order.
	seq                                          int
	id, aadID, email, fullName, domainName, buID string
	roles                                        []string // role ids, in association order
}

// lookupUser finds a user by object id or userPrincipalName, as
// /users/{id | userPrincipalName} does.
func (st *state) lookupUser(key string) *user {
	k := strings.ToLower(key)
	if u := st.byID[k]; u != nil {
		return u
	}
	return st.byUPN[k]
}

func (st *state) addUser(u *user) {
	u.seq = len(st.users)
	st.users = append(st.users, u)
	st.byID[strings.ToLower(u.id)] = u
	st.byUPN[strings.ToLower(u.upn)] = u
	if st.byValue == nil {
		st.byValue = map[string][]*user{}
	}
	for _, v := range append([]string{u.id, u.upn, u.mail}, u.otherMails...) {
		if v == "" {
			continue
		}
		k := strings.ToLower(v)
		if !slices.Contains(st.byValue[k], u) {
			st.byValue[k] = append(st.byValue[k], u)
		}
	}
	for _, dv := range st.dataverse {
		dv.pending = append(dv.pending, u)
	}
}

// userIndexed are the user properties byValue indexes: none of them
// changes after a user is created.
var userIndexed = map[string]bool{"id": true, "userPrincipalName": true, "mail": true, "otherMails": true}

// usersFor are the users that may match filter, in creation order: those
// byValue holds for its values, or every user when it does not narrow.
func (st *state) usersFor(filter expr) []*user {
	if filter == nil {
		return st.users
	}
	vals, ok := candidates(filter, userIndexed)
	if !ok {
		return st.users
	}
	return gather(vals, func(v string) []*user { return st.byValue[strings.ToLower(v)] },
		func(u *user) int { return u.seq })
}

func (st *state) skuByID(skuID string) *sku {
	for _, k := range st.skus {
		if strings.EqualFold(k.skuID, skuID) {
			return k
		}
	}
	return nil
}

func (st *state) skuByPart(part string) *sku {
	for _, k := range st.skus {
		if strings.EqualFold(k.part, part) {
			return k
		}
	}
	return nil
}

// groupsOf lists the ids of the groups u belongs to, sorted for stable output.
func (st *state) groupsOf(u *user) []string {
	ids := []string{}
	for id, g := range st.groups {
		if _, ok := g.members[u.id]; ok {
			ids = append(ids, id)
		}
	}
	sortStrings(ids)
	return ids
}

// lagging reports whether u is too fresh to be seen by a directory
// replica other than the one that created it.
func (s *Sim) lagging(u *user, now time.Time) bool {
	return s.opts.ReplicationLag > 0 && now.Sub(u.created) < s.opts.ReplicationLag
}
