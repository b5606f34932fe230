package graphsim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// apiKind says which Microsoft API a request is for; each has its own
// audience, ids in headers and error shape.
type apiKind int

const (
	apiGraph     apiKind = iota
	apiDataverse         // an instance's Web API
	apiBAP               // the Power Platform admin API (api.bap.microsoft.com)
)

// call is one Graph, Dataverse or Power Platform admin API request on its
// way through the pipeline: the handlers read the request from it and
// answer through it, so every answer carries the right ids and error shape
// for its API.
type call struct {
	s         *Sim
	w         *recorder
	r         *http.Request
	rt        *route
	params    map[string]string
	dataverse bool
	bap       bool
	inst      *instance // Dataverse only
	requestID string
	clientID  string // client-request-id, echoed by Graph
	appID     string // from the token
	now       time.Time
}

// serveAPI is the pipeline every Graph, Dataverse and Power Platform admin
// call goes through, in Microsoft's order: concurrency slots (Dataverse,
// Outlook), latency, injected faults (before anything else, so a fault
// never has a side effect), authentication, route, api-version (admin
// API), budgets, handler.
func (s *Sim) serveAPI(w *recorder, r *http.Request, kind apiKind) {
	dataverse := kind == apiDataverse
	c := &call{s: s, w: w, r: r, dataverse: dataverse, bap: kind == apiBAP, requestID: uuid.NewString()}
	h := w.Header()
	switch kind {
	case apiDataverse:
		h.Set("x-ms-service-request-id", c.requestID)
		h.Set("OData-Version", "4.0")
	case apiBAP:
		// Power Platform services answer with their own request id and
		// echo the caller's correlation id, as ARM does.
		corr := r.Header.Get("x-ms-correlation-request-id")
		if corr == "" {
			corr = c.requestID
		}
		h.Set("x-ms-service-request-id", c.requestID)
		h.Set("x-ms-correlation-request-id", corr)
	default:
		c.clientID = r.Header.Get("client-request-id")
		if c.clientID == "" {
			c.clientID = c.requestID
		}
		h.Set("request-id", c.requestID)
		h.Set("client-request-id", c.clientID)
	}

	rt, params, methodOK := matchRoute(r.Method, r.URL.EscapedPath())
	key := r.Method + " /v1.0/*"
	switch kind {
	case apiDataverse:
		key = r.Method + " " + dvPrefix + "/*"
	case apiBAP:
		key = r.Method + " " + bapPrefix + "/*"
	}
	if rt != nil {
		key = r.Method + " " + rt.pattern
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler { // a dropped connection, on purpose
				panic(p)
			}
			if !w.wrote {
				c.fail(http.StatusInternalServerError, c.pick("generalException", "0x80040216", "InternalServerError"), fmt.Sprintf("graphsim bug: %v", p))
			}
		}
		if !w.canceled {
			s.stats.record(key, w.status, rt, methodOK)
		}
	}()

	if dataverse {
		// A concurrency slot spans the whole request, latency included,
		// as the time a request holds a Dataverse web server does.
		if name := instanceName(r); s.instances[name] != nil {
			if !s.protection.enter(name) {
				c.tooManyConcurrent()
				return
			}
			defer s.protection.leave(name)
		}
	}
	if rt != nil && methodOK && rt.service == outlookService {
		// So does a mailbox's. The emulator accepts one app, so per
		// mailbox is per app and mailbox, as Outlook counts.
		mailbox := s.mailboxKey(params["id"])
		if !s.budgets.enterMailbox(mailbox) {
			c.tooManyMailRequests(mailbox)
			return
		}
		defer s.budgets.leaveMailbox(mailbox)
		s.stats.count(func(st *stats) {
			st.scopes[scopeMailConcurrency].admitted++
			st.scopes[scopeMailConcurrency].spent++
		})
	}
	if !s.sleep(r.Context()) {
		w.canceled = true
		return
	}
	if s.dropConnection() {
		w.canceled = true
		// The server closes the connection (HTTP/1.1) or resets the
		// stream (HTTP/2) without an answer.
		panic(http.ErrAbortHandler)
	}
	if s.injectFault(c) {
		return
	}
	if dataverse {
		name := instanceName(r)
		if c.inst = s.instances[name]; c.inst == nil {
			c.fail(http.StatusNotFound, "0x80040217", fmt.Sprintf("Organization %q does not exist: graphsim knows the instances %s.", name, strings.Join(s.instanceNames(), ", ")))
			return
		}
	}
	if !c.authenticate() {
		return
	}
	c.now = s.now()
	switch {
	case rt == nil:
		c.notFound()
		return
	case !methodOK:
		c.w.Header().Set("Allow", strings.Join(allowedMethods(rt.pattern), ", "))
		c.fail(http.StatusMethodNotAllowed, c.pick("Request_BadRequest", "0x80060888", "MethodNotAllowed"),
			fmt.Sprintf("The HTTP method '%s' is not allowed for the request target '%s'.", r.Method, r.URL.Path))
		return
	}
	if c.bap && !c.checkAPIVersion() {
		return
	}
	c.rt, c.params = rt, params
	if slices.Contains(s.opts.Deny, r.Method+" "+rt.pattern) {
		c.denied()
		return
	}
	if !c.admit() {
		return
	}
	if dataverse && !c.admitDataverse() {
		return
	}
	rt.handle(c)
}

// denied answers a call the app has no permission for, in each service's
// words.
func (c *call) denied() {
	switch {
	case c.bap:
		c.fail(http.StatusForbidden, "AuthorizationFailed", fmt.Sprintf(
			"The client '%s' does not have authorization to perform action '%s' over scope '%s'.", c.s.opts.ClientID, c.r.Method, c.r.URL.Path))
	case c.dataverse:
		c.fail(http.StatusForbidden, "0x80040220", fmt.Sprintf(
			"Principal user (Id=%s, type=8) is missing a privilege for %s %s. Consider adding the privilege to one of the principal's security roles.", c.s.opts.ClientID, c.r.Method, c.rt.pattern))
	default:
		c.fail(http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
	}
}

// instanceName is the instance a Dataverse path names:
// /instances/{name}/api/data/v9.2/….
func instanceName(r *http.Request) string {
	parts := strings.SplitN(r.URL.Path, "/", 4)
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

// sleep adds the configured latency, giving up when the client does.
func (s *Sim) sleep(ctx context.Context) bool {
	if s.opts.Latency <= 0 {
		return true
	}
	t := time.NewTimer(s.opts.Latency)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// notFound answers a path no route knows: Graph says 400 "Resource not
// found for the segment", Dataverse and the admin API 404.
func (c *call) notFound() {
	seg := c.r.URL.Path
	if segs, ok := splitPath(c.r.URL.EscapedPath()); ok {
		seg = segs[len(segs)-1]
	}
	msg := fmt.Sprintf("Resource not found for the segment '%s'.", seg)
	if c.bap {
		c.fail(http.StatusNotFound, "NotFound", fmt.Sprintf("The requested resource '%s' was not found.", c.r.URL.Path))
		return
	}
	if c.dataverse {
		c.fail(http.StatusNotFound, "0x8006088a", msg)
		return
	}
	c.fail(http.StatusBadRequest, "BadRequest", msg)
}

// pick chooses between the Graph, the Dataverse and the Power Platform
// admin API spelling of something.
func (c *call) pick(graph, dataverse, bap string) string {
	switch {
	case c.dataverse:
		return dataverse
	case c.bap:
		return bap
	}
	return graph
}

// param is a path parameter of the matched route.
func (c *call) param(name string) string { return c.params[name] }

// base is the emulator's URL for links in bodies (@odata.context, redeem URLs).
func (c *call) base() string { return c.s.baseURL(c.r) }

// dvBase is the Web API root of the call's instance.
func (c *call) dvBase() string {
	return c.base() + "/instances/" + c.inst.name + "/api/data/v9.2"
}

// reply writes a JSON body with the content type each API uses.
func (c *call) reply(status int, v any) {
	ct := "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
	if c.dataverse {
		ct = "application/json; odata.metadata=minimal"
	} else if c.bap {
		ct = "application/json; charset=utf-8"
	}
	c.w.Header().Set("Content-Type", ct)
	writeBody(c.w, status, v)
}

// empty answers 202/204 with no body.
func (c *call) empty(status int) { c.w.WriteHeader(status) }

// fail writes the API's error shape. Graph's carries innerError with the
// ids Microsoft support asks for; Dataverse's and the admin API's are just
// code and message. No error is ever text/plain: kiota drops the status of
// a text error body.
func (c *call) fail(status int, code, message string) {
	if c.dataverse || c.bap {
		c.reply(status, map[string]any{"error": map[string]string{"code": code, "message": message}})
		return
	}
	c.reply(status, map[string]any{"error": map[string]any{
		"code":    code,
		"message": message,
		"innerError": map[string]string{
			"date":              time.Now().UTC().Format("2006-01-02T15:04:05"),
			"request-id":        c.requestID,
			"client-request-id": c.clientID,
		},
	}})
}

// writeJSON writes v as plain JSON, for the token and /_sim endpoints.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	writeBody(w, status, v)
}

func writeBody(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"generalException","message":"graphsim could not encode its answer"}}`)
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// rfc3339 formats times the way Graph and Dataverse do (UTC, seconds).
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// nullable turns "" into JSON null, as Graph reports unset properties.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
