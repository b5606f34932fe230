package graphsim

import (
	"net/url"
	"strings"
)

// budgetKind says which write budgets an identity route spends.
type budgetKind int

const (
	noBudget     budgetKind = iota
	writeBudget             // Graph identity and access writes
	inviteBudget            // invitations: the invitation and the write budgets
)

// service says whose throttling a route is under: Microsoft Graph fronts
// several services, each with limits of its own.
type service int

const (
	noService       service = iota // Dataverse and the admin API: their own (protection.go)
	identityService                // Entra identity and access: resource units and writes
	outlookService                 // Exchange: per app and mailbox
)

// route is one API endpoint. Its pattern doubles as the key of /_sim/stats
// calls, so ids are spelled {id} there exactly as here. ru is an identity
// route's base cost in resource units (resourceUnits).
type route struct {
	method, pattern string
	segs            []string
	service         service
	ru              int
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
	// Base resource units from Microsoft's table of request costs (see
	// resourceUnits); routes it does not list cost 1.
	identityRoute("GET", "/v1.0/users", 2, noBudget, (*call).listUsers),
	identityRoute("GET", "/v1.0/users/{id}", 1, noBudget, (*call).getUser),
	identityRoute("PATCH", "/v1.0/users/{id}", 1, writeBudget, (*call).patchUser),
	identityRoute("GET", "/v1.0/users/{id}/licenseDetails", 2, noBudget, (*call).licenseDetails),
	identityRoute("POST", "/v1.0/users/{id}/assignLicense", 1, writeBudget, (*call).assignLicense),
	identityRoute("POST", "/v1.0/invitations", 1, inviteBudget, (*call).invite),
	identityRoute("GET", "/v1.0/subscribedSkus", 3, noBudget, (*call).subscribedSkus),
	identityRoute("POST", "/v1.0/groups/{id}/members/$ref", 1, writeBudget, (*call).addMember),
	outlookRoute("POST", "/v1.0/users/{id}/sendMail", (*call).sendMail),

	newRoute("GET", dvPrefix+"/WhoAmI", (*call).whoAmI),
	newRoute("GET", dvPrefix+"/systemusers", (*call).listSystemUsers),
	newRoute("GET", dvPrefix+"/systemusers({id})", (*call).getSystemUser),
	newRoute("PATCH", dvPrefix+"/systemusers({id})", (*call).patchSystemUser),
	newRoute("GET", dvPrefix+"/systemusers({id})/systemuserroles_association", (*call).listUserRoles),
	newRoute("POST", dvPrefix+"/systemusers({id})/systemuserroles_association/$ref", (*call).associateRole),
	newRoute("GET", dvPrefix+"/businessunits", (*call).listBusinessUnits),
	newRoute("GET", dvPrefix+"/roles", (*call).listRoles),

	newRoute("POST", bapPrefix+"/scopes/admin/environments/{id}/addUser", (*call).bapAddUser),
}

func newRoute(method, pattern string, h func(*call)) *route {
	return &route{method: method, pattern: pattern, segs: strings.Split(strings.TrimPrefix(pattern, "/"), "/"), handle: h}
}

func identityRoute(method, pattern string, ru int, b budgetKind, h func(*call)) *route {
	rt := newRoute(method, pattern, h)
	rt.service, rt.ru, rt.budget = identityService, ru, b
	return rt
}

func outlookRoute(method, pattern string, h func(*call)) *route {
	rt := newRoute(method, pattern, h)
	rt.service = outlookService
	return rt
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
