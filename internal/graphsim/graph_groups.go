package graphsim

import (
	"net/http"
	"net/url"
	"strings"
)

// refRequest is an OData reference: {"@odata.id": "<url of the object>"}.
type refRequest struct {
	ODataID *string `json:"@odata.id"`
}

func (*refRequest) odataType() string { return "the reference" }

// addMember is POST /groups/{id}/members/$ref. Entra answers a reference to
// an object it cannot see yet (replication lag) or at all with 400 "does not
// exist", and an existing membership with 400 "already exist" — both of
// which guestflow must tell apart from real failures.
func (c *call) addMember() {
	var req refRequest
	if !c.decode(&req) {
		return
	}
	if req.ODataID == nil || *req.ODataID == "" {
		c.fail(http.StatusBadRequest, "BadRequest", "The '@odata.id' property is required in a reference.")
		return
	}
	userID, ok := directoryObjectID(*req.ODataID)
	if !ok {
		c.fail(http.StatusBadRequest, "BadRequest", "Invalid URL format specified in @odata.id for members: '"+*req.ODataID+"'.")
		return
	}

	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	g := c.s.st.groups[strings.ToLower(c.param("id"))]
	if g == nil {
		c.resourceNotFound(c.param("id"))
		return
	}
	u := c.s.st.byID[strings.ToLower(userID)]
	if u == nil || c.s.lagging(u, c.now) {
		c.fail(http.StatusBadRequest, "Request_BadRequest", resourceMissing(userID))
		return
	}
	if _, dup := g.members[u.id]; dup {
		c.fail(http.StatusBadRequest, "Request_BadRequest", "One or more added object references already exist for the following modified properties: 'members'.")
		return
	}
	g.members[u.id] = c.now
	c.empty(http.StatusNoContent)
}

// directoryObjectID takes the object id from an @odata.id such as
// https://graph.microsoft.com/v1.0/directoryObjects/{id}. Any host is
// accepted (clients may name the real Graph host); the path must end in
// directoryObjects/{id} or users/{id} with a GUID id.
func directoryObjectID(ref string) (string, bool) {
	u, err := url.Parse(ref)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", false
	}
	segs := strings.Split(strings.TrimSuffix(u.Path, "/"), "/")
	if len(segs) < 2 {
		return "", false
	}
	kind, id := segs[len(segs)-2], segs[len(segs)-1]
	if !strings.EqualFold(kind, "directoryObjects") && !strings.EqualFold(kind, "users") || !isGUID(id) {
		return "", false
	}
	return id, true
}
