package httpclient_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/guestflow/guestflow/internal/httpclient"
	"github.com/guestflow/guestflow/internal/metrics"
)

func TestRouteNamesServiceAndTemplate(t *testing.T) {
	const (
		guid = "5f2b1a3c-8d4e-4f60-9a7b-0c1d2e3f4a5b"
		upn  = "ana.silva_fabrikam.com#EXT#@contoso.onmicrosoft.com"
	)
	for _, tc := range []struct {
		method, url    string
		service, route string
	}{
		// Entra ID, real and emulated: the tenant is an id or a domain.
		{"POST", "https://login.microsoftonline.com/" + guid + "/oauth2/v2.0/token", "token", "POST /{tenant}/oauth2/v2.0/token"},
		{"POST", "https://127.0.0.1:8443/contoso.onmicrosoft.com/oauth2/v2.0/token", "token", "POST /{tenant}/oauth2/v2.0/token"},
		{"GET", "https://login.microsoftonline.com/" + guid + "/v2.0/.well-known/openid-configuration", "token", "GET /{tenant}/v2.0/.well-known/openid-configuration"},
		{"GET", "https://login.microsoftonline.com/common/discovery/instance?api-version=1.1&authorization_endpoint=x", "token", "GET /{tenant}/discovery/instance"},
		// Graph: ids and user principal names, escaped or not, and the
		// query string (a $filter naming an address) are left out.
		{"POST", "https://graph.microsoft.com/v1.0/invitations", "graph", "POST /v1.0/invitations"},
		{"GET", "https://graph.microsoft.com/v1.0/users?$filter=mail%20eq%20%27ana%40fabrikam.com%27&$select=id", "graph", "GET /v1.0/users"},
		{"GET", "https://graph.microsoft.com/v1.0/users/" + guid, "graph", "GET /v1.0/users/{id}"},
		{"PATCH", "https://graph.microsoft.com/v1.0/users/" + url.PathEscape(upn), "graph", "PATCH /v1.0/users/{id}"},
		{"POST", "https://graph.microsoft.com/v1.0/users/" + guid + "/assignLicense", "graph", "POST /v1.0/users/{id}/assignLicense"},
		{"GET", "https://graph.microsoft.com/v1.0/users/" + guid + "/licenseDetails", "graph", "GET /v1.0/users/{id}/licenseDetails"},
		{"POST", "https://graph.microsoft.com/v1.0/users/sender@contoso.com/sendMail", "graph", "POST /v1.0/users/{id}/sendMail"},
		{"POST", "https://graph.microsoft.com/v1.0/groups/" + guid + "/members/$ref", "graph", "POST /v1.0/groups/{id}/members/$ref"},
		{"GET", "https://graph.microsoft.com/v1.0/subscribedSkus", "graph", "GET /v1.0/subscribedSkus"},
		// Dataverse: the instance's own path (the emulator's
		// /instances/<name>) is not part of the API's route.
		{"GET", "https://contoso.crm4.dynamics.com/api/data/v9.2/systemusers?$filter=azureactivedirectoryobjectid%20eq%20" + guid, "dataverse", "GET /api/data/v9.2/systemusers"},
		{"GET", "https://127.0.0.1:8443/instances/sales/api/data/v9.2/systemusers", "dataverse", "GET /api/data/v9.2/systemusers"},
		{"PATCH", "https://contoso.crm4.dynamics.com/api/data/v9.2/systemusers(" + guid + ")", "dataverse", "PATCH /api/data/v9.2/systemusers({id})"},
		{"POST", "https://contoso.crm4.dynamics.com/api/data/v9.2/systemusers(" + guid + ")/systemuserroles_association/$ref", "dataverse", "POST /api/data/v9.2/systemusers({id})/systemuserroles_association/$ref"},
		{"GET", "https://contoso.crm4.dynamics.com/api/data/v9.2/WhoAmI", "dataverse", "GET /api/data/v9.2/WhoAmI"},
		// Power Platform: environment ids are GUIDs, some prefixed.
		{"POST", "https://api.bap.microsoft.com/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/Default-" + guid + "/addUser?api-version=2020-10-01", "powerplatform", "POST /providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{id}/addUser"},
		{"POST", "https://127.0.0.1:8443/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/" + guid + "/addUser", "powerplatform", "POST /providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{id}/addUser"},
		// Anything else gets no route at all.
		{"GET", "https://127.0.0.1:8443/_sim/users/" + upn, "other", "other"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		service, route := httpclient.Route(tc.method, u)
		if service != tc.service || route != tc.route {
			t.Errorf("%s %s:\n got %s %q\nwant %s %q", tc.method, tc.url, service, route, tc.service, tc.route)
		}
		for _, leak := range []string{guid, "ana", "fabrikam", "contoso", "sender", "sales", "api-version", "?"} {
			if strings.Contains(route, leak) {
				t.Errorf("%s %s: route %q carries %q", tc.method, tc.url, route, leak)
			}
		}
	}
}

func TestInstrumentCountsRequestsAndFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	hc := &http.Client{Transport: httpclient.Instrument(nil)}
	const op = "POST /v1.0/users/{id}/assignLicense"
	throttled := metrics.RemoteRequests.WithLabelValues("graph", op, "429")
	failed := metrics.RemoteRequests.WithLabelValues("graph", op, "error")
	before429, beforeErr := testutil.ToFloat64(throttled), testutil.ToFloat64(failed)
	beforeTimed := testutil.CollectAndCount(metrics.RemoteDuration)

	resp, err := hc.Post(srv.URL+"/v1.0/users/42/assignLicense", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// No answer: a closed server.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if _, err := hc.Post(dead.URL+"/v1.0/users/43/assignLicense", "application/json", nil); err == nil {
		t.Fatal("a closed server answered")
	}

	if got := testutil.ToFloat64(throttled) - before429; got != 1 {
		t.Errorf("status 429 counted %v times, want 1", got)
	}
	if got := testutil.ToFloat64(failed) - beforeErr; got != 1 {
		t.Errorf("status error counted %v times, want 1", got)
	}
	if beforeTimed == 0 && testutil.CollectAndCount(metrics.RemoteDuration) == 0 {
		t.Error("no request duration observed")
	}
}

func TestNewClientIsInstrumented(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	hc := httpclient.WithPool(pool, 0)
	c := metrics.RemoteRequests.WithLabelValues("graph", "GET /v1.0/subscribedSkus", "200")
	before := testutil.ToFloat64(c)
	resp, err := hc.Get(srv.URL + "/v1.0/subscribedSkus")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := testutil.ToFloat64(c) - before; got != 1 {
		t.Errorf("a request through WithPool's client counted %v times, want 1", got)
	}
}
