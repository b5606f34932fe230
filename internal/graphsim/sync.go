package graphsim

import (
	"time"
)

// syncLocked brings an environment's systemusers up to date with Entra, as
// Dataverse's background user sync would have by now. A user qualifies when
// it holds any license of the tenant and, if the environment has a security
// group, is a member of it; its row appears SyncDelay after the later of the
// two. Rows are created lazily, when someone looks, so no timer runs and the
// result depends only on the clock. Caller holds s.mu.
func (s *Sim) syncLocked(in *instance, now time.Time) *dvState {
	dv := s.st.dataverse[in.name]
	waiting := dv.pending[:0]
	for _, u := range dv.pending {
		if dv.byAAD[u.id] != nil {
			continue // added by the admin API meanwhile
		}
		ready, ok := s.syncReadyAt(in, u)
		if !ok || now.Before(ready) {
			waiting = append(waiting, u)
			continue
		}
		dv.add(newSystemUser(in, u))
	}
	clear(dv.pending[len(waiting):])
	dv.pending = waiting
	return dv
}

// newSystemUser is the row Dataverse creates for u in environment in, by
// the background sync or by the admin API's addUser alike.
func newSystemUser(in *instance, u *user) *systemUser {
	su := &systemUser{
		id:         derivedID("systemuser", in.name, u.id),
		aadID:      u.id,
		email:      u.mail,
		fullName:   u.displayName,
		domainName: u.upn,
		buID:       in.rootBU.id,
		roles:      []string{},
	}
	// Environments older than Dynamics 365 copy the guest's #EXT# UPN
	// into the primary email; guestflow's role step fixes it.
	if su.email == "" || in.legacy && u.userType == "Guest" {
		su.email = u.upn
	}
	return su
}

func (dv *dvState) add(su *systemUser) {
	su.seq = len(dv.order)
	dv.byAAD[su.aadID] = su
	dv.byID[su.id] = su
	dv.order = append(dv.order, su)
}

// syncReadyAt is when u's systemuser appears in the environment, if ever.
func (s *Sim) syncReadyAt(in *instance, u *user) (time.Time, bool) {
	if len(u.licenses) == 0 {
		return time.Time{}, false
	}
	ready := u.licensedAt
	if in.groupID != "" {
		g := s.st.groups[in.groupID]
		added, member := g.members[u.id]
		if !member {
			return time.Time{}, false
		}
		if added.After(ready) {
			ready = added
		}
	}
	return ready.Add(s.syncDelay), true
}
