package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/intake"
	"github.com/guestflow/guestflow/internal/ops"
	"github.com/guestflow/guestflow/internal/timeline"
)

// intakeFlags are `guestflow intake`'s settings; each overrides the
// configuration's intake key of the same meaning when given.
type intakeFlags struct {
	o       intake.Options
	natsURL natsFlag
	ops     opsFlags
}

func newIntake(g *globals) *cobra.Command {
	f := &intakeFlags{}
	cmd := &cobra.Command{
		Use:   "intake",
		Short: "Take joined events from HR systems over HTTP (CloudEvents) and publish them",
		Long: `Serve the HTTP intake: HR and identity systems POST io.guestflow.user.joined.v1 as
CloudEvents to /v1/events, and it publishes each on guestflow.user.joined. Each event
is checked exactly as the invite step checks it, and answered only once the broker has
stored it:

  202  {"onboardingId": "...", "duplicate": false}   (a batch: an array, in order)
  400  the event is invalid; the answer names the fields, in the dead letter's words
       (a batch with any invalid event publishes none of it, and names each by index)
  401  no credential, or a wrong one      405  another method
  413  over 64 KiB an event, --body-limit a batch
  415  another media type                 429  over --rate; see Retry-After
  503  the broker did not store it; send it again after Retry-After

Content modes: structured (Content-Type: application/cloudevents+json), binary
(Content-Type: application/json and ce-* headers) and batched
(application/cloudevents-batch+json, a JSON array of up to 100 structured events).
OPTIONS /v1/events answers the CloudEvents webhook handshake (WebHook-Request-Origin).
GET /v1/onboardings/{id} answers what 'guestflow status {id} --json' prints (404 when
unknown).

Every route needs a credential, and at least one kind must be configured:
  --tokens-file       bearer tokens, one a line (# comments); re-read when it changes,
                      so a token removed from it stops working without a restart
  --hmac-secret-file  HMAC-SHA256 secrets, one a line: the sender signs
                      "<unix time>\n<METHOD>\n<path>\n<body>" and sends
                      X-Guestflow-Timestamp and X-Guestflow-Signature: sha256=<hex>;
                      a signature is good for 5 minutes either way
  --client-ca         mTLS: every connection must present a client certificate signed
                      by this CA (needs --tls-cert and --tls-key); alone, the
                      certificate's subject is the credential
Each credential (token, HMAC secret, certificate subject) has its own rate limit.

The intake publishes to the GUESTFLOW stream, which the workers create, and reads it
(and GUESTFLOW_DLQ, GUESTFLOW_INDEX) for the status route. Flags override the
configuration's intake: keys (GUESTFLOW_INTAKE_… variables); see docs/intake.md.`,
		Example: `  openssl rand -hex 32 > tokens && guestflow intake --tokens-file tokens
  curl -sS http://127.0.0.1:8088/v1/events -H "Authorization: Bearer $(cat tokens)" \
    -H 'Content-Type: application/cloudevents+json' \
    -d '{"specversion":"1.0","id":"hr-1001","source":"hr/workday","type":"io.guestflow.user.joined.v1",
         "data":{"email":"ana.silva@fabrikam.com","givenName":"Ana","surname":"Silva",
                 "usageLocation":"PT","instance":"sales"}}'
  curl -sS http://127.0.0.1:8088/v1/onboardings/hr-1001 -H "Authorization: Bearer $(cat tokens)"
  guestflow intake --listen 0.0.0.0:8443 --tls-cert tls.crt --tls-key tls.key \
    --client-ca hr-clients.pem --config guestflow.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadUnvalidated(g.configPath, cmd.Flags().Changed("config"), os.Environ())
			if err != nil {
				return err
			}
			o := f.options(cmd.Flags(), cfg.Intake)
			if o.Rate <= 0 || o.Burst < 1 {
				return fmt.Errorf("--rate %v, --burst %d: each credential needs a rate above 0 and a burst of at least 1", o.Rate, o.Burst)
			}
			o.Logger = g.logger()
			if err := o.Validate(); err != nil {
				return err
			}
			o.Status = timeline.Options{DirectoryNote: noTenantNote}
			if cfg.Tenant.ID != "" {
				if dir, err := app.NewGraph(cfg, credentialsFromEnv()); err != nil {
					o.Status.DirectoryNote = "not shown: " + err.Error()
				} else {
					o.Status.Directory = dir
				}
			}
			f.natsURL.apply(&cfg.NATS)
			nc, _, err := app.Connect(cfg.NATS, "guestflow-intake")
			if err != nil {
				return err
			}
			defer nc.Close()
			srv, err := intake.New(nc, o)
			if err != nil {
				return err
			}
			opsSrv, err := f.ops.start(cmd.Context(), o.Logger, ops.NATSConnected(nc),
				ops.Check{Name: "intake", Run: func(context.Context) error { return srv.Ready() }})
			if err != nil {
				return err
			}
			if opsSrv != nil {
				defer opsSrv.Shutdown()
			}
			ln, err := srv.Listen()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "intake      %s (POST /v1/events, GET /v1/onboardings/{id})\n", srv.URL(ln))
			return srv.Serve(cmd.Context(), ln)
		},
	}
	f.register(cmd.Flags())
	f.ops.register(cmd, "")
	return cmd
}

// register binds the flags to f.
func (f *intakeFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.o.Listen, "listen", intake.DefaultListen, "address to serve on")
	fl.StringVar(&f.o.TLSCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain)")
	fl.StringVar(&f.o.TLSKey, "tls-key", "", "the PEM private key of --tls-cert")
	fl.StringVar(&f.o.ClientCA, "client-ca", "", "require client certificates signed by this PEM CA bundle (mTLS)")
	fl.StringVar(&f.o.TokensFile, "tokens-file", "", "bearer tokens, one a line, # comments; re-read when it changes")
	fl.StringVar(&f.o.HMACSecretFile, "hmac-secret-file", "", "HMAC-SHA256 secrets, one a line, # comments; re-read when it changes")
	fl.Float64Var(&f.o.Rate, "rate", intake.DefaultRate, "requests per second per credential")
	fl.IntVar(&f.o.Burst, "burst", intake.DefaultBurst, "requests per credential that may come at once")
	fl.Int64Var(&f.o.BodyLimit, "body-limit", intake.DefaultBodyLimit, "largest request body in bytes (a batch; one event is at most 65536 with its headers)")
	fl.DurationVar(&f.o.PublishTimeout, "publish-timeout", intake.DefaultPublishTimeout, "how long to wait for the broker's PubAck before answering 503")
	fl.DurationVar(&f.o.ReadTimeout, "read-timeout", intake.DefaultReadTimeout, "how long a request, body included, may take to arrive")
	fl.DurationVar(&f.o.ReadHeaderTimeout, "read-header-timeout", intake.DefaultReadHeaderTimeout, "how long a request's headers may take to arrive")
	fl.DurationVar(&f.o.IdleTimeout, "idle-timeout", intake.DefaultIdleTimeout, "how long an idle keep-alive connection stays open")
	f.natsURL.register(fl)
}

// options merges the flags with the configuration: a flag given on the
// command line wins, then the configuration's key, then the flag's
// default.
func (f *intakeFlags) options(fl *pflag.FlagSet, c config.Intake) intake.Options {
	o := f.o
	str := func(flag string, dst *string, v string) {
		if !fl.Changed(flag) && v != "" {
			*dst = v
		}
	}
	str("listen", &o.Listen, c.Listen)
	str("tls-cert", &o.TLSCert, c.TLSCert)
	str("tls-key", &o.TLSKey, c.TLSKey)
	str("client-ca", &o.ClientCA, c.ClientCA)
	str("tokens-file", &o.TokensFile, c.TokensFile)
	str("hmac-secret-file", &o.HMACSecretFile, c.HMACSecretFile)
	if !fl.Changed("rate") && c.Rate != 0 {
		o.Rate = c.Rate
	}
	if !fl.Changed("burst") && c.Burst != 0 {
		o.Burst = c.Burst
	}
	if !fl.Changed("body-limit") && c.BodyLimit != 0 {
		o.BodyLimit = c.BodyLimit
	}
	dur := func(flag string, dst *time.Duration, v time.Duration) {
		if !fl.Changed(flag) && v != 0 {
			*dst = v
		}
	}
	dur("publish-timeout", &o.PublishTimeout, c.PublishTimeout)
	dur("read-timeout", &o.ReadTimeout, c.ReadTimeout)
	dur("read-header-timeout", &o.ReadHeaderTimeout, c.ReadHeaderTimeout)
	dur("idle-timeout", &o.IdleTimeout, c.IdleTimeout)
	return o
}
