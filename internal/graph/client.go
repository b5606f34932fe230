package graph

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoft/kiota-abstractions-go/serialization"
	kiotaauth "github.com/microsoft/kiota-authentication-azure-go"
	kiotahttp "github.com/microsoft/kiota-http-go"
	jsonser "github.com/microsoft/kiota-serialization-json-go"
	textser "github.com/microsoft/kiota-serialization-text-go"
)

// Client calls Microsoft Graph v1.0 with app-only tokens.
type Client struct {
	adapter abstractions.RequestAdapter
	// base is the v1.0 root, e.g. https://graph.microsoft.com/v1.0.
	base string
}

// Options tune the client.
type Options struct {
	// Wrap wraps the network transport, e.g. with the tenant's shared
	// write budget (package throttle).
	Wrap func(http.RoundTripper) http.RoundTripper
	// SDKRetry turns kiota's own retry handler back on (3 retries on
	// 429/503/504). Only the benchmark's baseline wants that.
	SDKRetry bool
}

// New returns a Graph client for graphURL (https://graph.microsoft.com or
// the emulator's URL) using cred for tokens and hc for transport.
//
// kiota's own retry handler is switched off (ShouldRetry returning false:
// MaxRetries 0 would mean "the default 3"), so that the worker runtime is
// the only retry layer and a throttled call is not repeated behind its
// back. Request compression is off too: with retries it could label a plain
// body as gzip (kiota-http-go issue 183), and the bodies are tiny.
func New(cred azcore.TokenCredential, graphURL string, hc *http.Client, o Options) (*Client, error) {
	u, err := url.Parse(graphURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("graph: bad URL %q", graphURL)
	}
	root := strings.TrimSuffix(graphURL, "/")
	// kiota compares hosts without the port, and sends no token at all to
	// a host not on the list — so the list must be exactly this host.
	auth, err := kiotaauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(
		cred, []string{root + "/.default"}, []string{u.Hostname()})
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	retry := &kiotahttp.RetryHandlerOptions{ShouldRetry: func(time.Duration, int, *http.Request, *http.Response) bool { return false }}
	if o.SDKRetry {
		retry = &kiotahttp.RetryHandlerOptions{MaxRetries: 3, DelaySeconds: 3,
			ShouldRetry: func(time.Duration, int, *http.Request, *http.Response) bool { return true }}
	}
	middlewares, err := kiotahttp.GetDefaultMiddlewaresWithOptions(retry, kiotahttp.NewCompressionOptionsReference(false))
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	parent := hc.Transport
	if parent == nil {
		parent = http.DefaultTransport
	}
	if o.Wrap != nil {
		parent = o.Wrap(parent)
	}
	client := &http.Client{
		Transport:     kiotahttp.NewCustomTransportWithParentTransport(parent, middlewares...),
		Timeout:       hc.Timeout,
		CheckRedirect: hc.CheckRedirect,
	}
	parse := serialization.NewParseNodeFactoryRegistry()
	parse.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonParseNodeFactory()
	parse.ContentTypeAssociatedFactories["text/plain"] = textser.NewTextParseNodeFactory()
	write := serialization.NewSerializationWriterFactoryRegistry()
	write.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonSerializationWriterFactory()
	write.ContentTypeAssociatedFactories["text/plain"] = textser.NewTextSerializationWriterFactory()
	adapter, err := kiotahttp.NewNetHttpRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, parse, write, client)
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	base := root + "/v1.0"
	adapter.SetBaseUrl(base)
	return &Client{adapter: adapter, base: base}, nil
}

// params is what every sub-package request builder needs.
func (c *Client) params() map[string]string { return map[string]string{"baseurl": c.base} }

// errNoBody guards against a success without the object we asked for.
var errNoBody = errors.New("graph answered without a body")
