package graphsim

import (
	"net/url"
	"strings"
)

// budgetKind says which throttling budget a route spends.
type budgetKind int

const (
	noBudget     budgetKind = iota
	writeBudget             // Graph identity and access writes
	inviteBudget            // invitations: both the invite and the write budget
)

// route is one API endpoint. Its pattern doubles as the key of /_sim/stats
// calls, so ids are spelled {id} there exactly as here.
type route struct {
	method, pattern string
	segs            []string
	budget          budgetKind
	handle          func(*call)
}

const dvPrefix = "/instances/{instance}/api/data/v9.2"

// bapPrefix is the Power Platform admin API's root below the emulator's
// URL, as below https://api.bap.microsoft.com.
const bapPrefix = "/providers/Microsoft.BusinessAppPlatform"

// apiRoutes are matched by hand rather than by ServeMux because Graph's
// "$ref" and Dataverse's "systemusers(<id>)" segments are not ServeMux
// wildcards, and because the stats key must be known before authentication.
var apiRoutes = []*route{
	newRoute("GET", "/v1.0/users", noBudget, (*call).listUsers),
	newRoute("GET", "/v1.0/users/{id}", noBudget, (*call).getUser),
	newRoute("PATCH", "/v1.0/users/{id}", writeBudget, (*call).patchUser),
	newRoute("GET", "/v1.0/users/{id}/licenseDetails", noBudget, (*call).licenseDetails),
	newRoute("POST", "/v1.0/users/{id}/assignLicense", writeBudget, (*call).assignLicense),
	newRoute("POST", "/v1.0/users/{id}/sendMail", noBudget, (*call).sendMail),
	newRoute("POST", "/v1.0/invitations", inviteBudget, (*call).invite),
	newRoute("GET", "/v1.0/subscribedSkus", noBudget, (*call).subscribedSkus),
	newRoute("POST", "/v1.0/groups/{id}/members/$ref", writeBudget, (*call).addMember),

	newRoute("GET", dvPrefix+"/WhoAmI", noBudget, (*call).whoAmI),
	newRoute("GET", dvPrefix+"/systemusers", noBudget, (*call).listSystemUsers),
	newRoute("GET", dvPrefix+"/systemusers({id})", noBudget, (*call).getSystemUser),
	newRoute("PATCH", dvPrefix+"/systemusers({id})", noBudget, (*call).patchSystemUser),
	newRoute("GET", dvPrefix+"/systemusers({id})/systemuserroles_association", noBudget, (*call).listUserRoles),
	newRoute("POST", dvPrefix+"/systemusers({id})/systemuserroles_association/$ref", noBudget, (*call).associateRole),
	newRoute("GET", dvPrefix+"/businessunits", noBudget, (*call).listBusinessUnits),
	newRoute("GET", dvPrefix+"/roles", noBudget, (*call).listRoles),

	newRoute("POST", bapPrefix+"/scopes/admin/environments/{id}/addUser", noBudget, (*call).bapAddUser),
}

func newRoute(method, pattern string, b budgetKind, h func(*call)) *route {
	return &route{method: method, pattern: pattern, segs: strings.Split(strings.TrimPrefix(pattern, "/"), "/"), budget: b, handle: h}
}

// match finds the route for a request. It returns the route whose pattern
// fits the path even when the method does not (methodOK false), so that the
// caller can answer 405 and count the call under its real route.
func matchRoute(method, escapedPath string) (rt *route, params map[string]string, methodOK bool) {
	segs, ok := splitPath(escapedPath)
	if !ok {
		return nil, nil, false
	}
	for _, cand := range apiRoutes {
		p, ok := cand.match(segs)
		if !ok {
			continue
		}
		if cand.method == method {
			return cand, p, true
		}
		if rt == nil {
			rt, params = cand, p
		}
	}
	return rt, params, false
}

// allowedMethods lists the methods a route pattern answers, for Allow.
func allowedMethods(pattern string) []string {
	var methods []string
	for _, rt := range apiRoutes {
		if rt.pattern == pattern {
			methods = append(methods, rt.method)
		}
	}
	return methods
}

// splitPath unescapes each segment separately, so an escaped "/" inside an
// id (never valid) cannot shift segments, while "%23EXT%23" in a UPN and
// "%24ref" decode as clients mean them.
func splitPath(escaped string) ([]string, bool) {
	escaped = strings.TrimSuffix(strings.TrimPrefix(escaped, "/"), "/")
	raw := strings.Split(escaped, "/")
	segs := make([]string, len(raw))
	for i, r := range raw {
		s, err := url.PathUnescape(r)
		if err != nil {
			return nil, false
		}
		segs[i] = s
	}
	return segs, true
}

// match compares segment by segment: "{name}" takes any non-empty segment,
// "entity({name})" takes the key inside the parentheses; literals compare
// case-insensitively, as Graph's and Dataverse's do.
func (rt *route) match(segs []string) (map[string]string, bool) {
	if len(segs) != len(rt.segs) {
		return nil, false
	}
	params := map[string]string{}
	for i, p := range rt.segs {
		s := segs[i]
		switch open := strings.Index(p, "({"); {
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			if s == "" {
				return nil, false
			}
			params[p[1:len(p)-1]] = s
		case open > 0 && strings.HasSuffix(p, "})"):
			prefix := p[:open+1]
			if len(s) <= len(prefix)+1 || !strings.EqualFold(s[:len(prefix)], prefix) || !strings.HasSuffix(s, ")") {
				return nil, false
			}
			params[p[open+2:len(p)-2]] = s[len(prefix) : len(s)-1]
		default:
			if !strings.EqualFold(p, s) {
				return nil, false
			}
		}
	}
	return params, true
}
