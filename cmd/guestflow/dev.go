package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/broker"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/intake"
	"github.com/guestflow/guestflow/internal/timeline"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

func newDev(g *globals) *cobra.Command {
	var (
		sf       simFlags
		wf       workerFlags
		natsAddr string
		monitor  int
		dataDir  string
		demo     bool
		intakeAt string
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything on one machine: NATS, the Graph/Dataverse emulator, all workers, a demo user",
		Long: `Run the whole system with no account and nothing installed: an embedded NATS server
with JetStream (file storage under --data-dir), the Graph/Dataverse emulator, and the
invite, license, role and notify workers. Unless --demo=false, one demo user is
published and its progress printed until it is onboarded. It keeps serving until
Ctrl-C: publish more users with 'guestflow publish' or any NATS client, or POST them to
the HTTP intake on --intake-addr, whose bearer token is written, new at every start,
to intake.token in --data-dir (its first line that is not a # comment); the curl line
printed at start onboards a user through it.

Without --config it uses a built-in configuration matching the emulator's seeded
tenant (instances sales, service, legacy) and does not look for guestflow.yaml.`,
		Example: `  go run ./cmd/guestflow dev
  guestflow publish --email liam.obrien@contoso.example --given-name Liam --surname "O'Brien" \
    --usage-location IE --instance legacy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := wf.check(); err != nil {
				return err
			}
			wf.deprecations(cmd.Flags(), g.logger())
			return runDev(cmd.Context(), cmd.OutOrStdout(), g, cmd.Flags().Changed("config"), devSetup{
				sim: &sf, workers: &wf, natsAddr: natsAddr, monitor: monitor, dataDir: dataDir, demo: demo, intakeAddr: intakeAt,
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&natsAddr, "nats-addr", "127.0.0.1:4222", "embedded NATS listen address")
	fl.IntVar(&monitor, "monitor-port", 8222, "embedded NATS monitoring port (0 disables)")
	fl.StringVar(&dataDir, "data-dir", ".guestflow", "where JetStream stores the streams and the emulator's CA is written")
	fl.BoolVar(&demo, "demo", true, "publish one demo joined event and print its progress")
	fl.StringVar(&intakeAt, "intake-addr", intake.DefaultListen, `the HTTP intake's listen address ("" for none)`)
	sf.register(cmd, "graphsim-addr")
	wf.register(cmd)
	wf.ops.register(cmd, "127.0.0.1:9464")
	return cmd
}

type devSetup struct {
	sim      *simFlags
	workers  *workerFlags
	natsAddr string
	monitor  int
	dataDir  string
	demo     bool
	// intakeAddr is where the HTTP intake listens; "" runs none.
	intakeAddr string
}

func runDev(ctx context.Context, out io.Writer, g *globals, ownConfig bool, s devSetup) error {
	stopTracing, err := startTracing(ctx, "guestflow-dev", g)
	if err != nil {
		return err
	}
	defer stopTracing()
	host, portStr, err := net.SplitHostPort(s.natsAddr)
	if err != nil {
		return fmt.Errorf("--nats-addr: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("--nats-addr: bad port %q", portStr)
	}
	if err := os.MkdirAll(s.dataDir, 0o755); err != nil {
		return err
	}
	ns, err := broker.Start(broker.Options{Host: host, Port: port, HTTPPort: s.monitor, StoreDir: filepath.Join(s.dataDir, "jetstream")})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	fmt.Fprintf(out, "NATS        %s (JetStream in %s)\n", ns.ClientURL(), filepath.Join(s.dataDir, "jetstream"))

	sim, err := s.sim.start()
	if err != nil {
		return err
	}
	defer sim.Close()
	caFile := filepath.Join(s.dataDir, "graphsim-ca.pem")
	if err := os.WriteFile(caFile, sim.CAPEM(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "emulator    %s (inspect: %s/_sim/users, /_sim/mail, /_sim/stats)\n", sim.URL(), sim.URL())

	cfg := sim.Config()
	cfg.Tenant.CAFile = caFile
	creds := app.Credentials{ClientID: s.sim.clientID, ClientSecret: s.sim.clientSecret}
	if ownConfig {
		if cfg, err = config.Load(g.configPath, true, os.Environ()); err != nil {
			return err
		}
		creds = credentialsFromEnv()
	}
	// dev's broker is its own, on loopback, without users or TLS: the
	// configuration's nats section is for a real broker, and its
	// credentials would only be refused here.
	cfg.NATS = config.NATS{URL: ns.ClientURL()}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}

	nc, js, err := app.Connect(cfg.NATS, "guestflow-dev")
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := worker.EnsureStreams(ctx, js, worker.StreamOptions{}); err != nil {
		return err
	}
	onboarded, err := watch(nc, out)
	if err != nil {
		return err
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return runWorkers(ctx, cfg, creds, app.StepNames, s.workers, g) })
	fmt.Fprintln(out, "workers     invite, license, role, notify")
	if a := s.workers.ops.addr; a != "" {
		fmt.Fprintf(out, "ops         http://%s (/livez, /readyz, /metrics)\n", a)
	}
	if s.intakeAddr != "" {
		serve, err := devIntake(out, nc, s.intakeAddr, s.dataDir, g)
		if err != nil {
			return err
		}
		eg.Go(func() error { return serve(ctx) })
	}

	if s.demo {
		id := uuid.NewString()
		ev, err := events.NewJoined(id, "guestflow/dev", demoUser, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\ndemo        %s joins instance %q (onboarding %s)\n", demoUser.Email, demoUser.Instance, id)
		if err := publishJoined(ctx, cfg.NATS, ev); err != nil {
			return err
		}
		eg.Go(func() error {
			select {
			case <-onboarded.wait(id):
				fmt.Fprintf(out, "\nThe demo user is onboarded. guestflow keeps serving; publish more with\n"+
					"  go run ./cmd/guestflow publish --email someone@fabrikam.com --given-name Some --surname One --usage-location PT --instance service\n"+
					"and press Ctrl-C to stop.\n")
			case <-ctx.Done():
			}
			return nil
		})
	}
	err = eg.Wait()
	fmt.Fprintln(out, "shutting down")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// devIntake opens the HTTP intake with a new random bearer token in
// <dataDir>/intake.token and prints how to onboard a user through it; the
// token itself stays in the file. serve runs it until ctx ends.
func devIntake(out io.Writer, nc *nats.Conn, addr, dataDir string, g *globals) (serve func(context.Context) error, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dataDir, "intake.token")
	token := hex.EncodeToString(b)
	content := "# guestflow dev: the HTTP intake's bearer token, new at every start (the first line that is not a comment)\n" + token + "\n"
	if err := os.WriteFile(tokenFile, []byte(content), 0o600); err != nil {
		return nil, err
	}
	srv, err := intake.New(nc, intake.Options{Listen: addr, TokensFile: tokenFile, Logger: g.logger(),
		Status: timeline.Options{DirectoryNote: noTenantNote}})
	if err != nil {
		return nil, err
	}
	ln, err := srv.Listen()
	if err != nil {
		return nil, fmt.Errorf("--intake-addr: %w", err)
	}
	url := srv.URL(ln)
	// Printed: dev's token opens only this machine's loopback intake, and
	// changes at every start.
	fmt.Fprintf(out, "intake      %s, bearer token %s (also in %s); onboard a user through it with\n", url, token, tokenFile)
	fmt.Fprintf(out, "  curl -sS %s/v1/events -H \"Authorization: Bearer $(grep -m1 -v '^#' %s)\" \\\n"+
		"    -H 'Content-Type: application/cloudevents+json' -d '{\"specversion\":\"1.0\",\"id\":\"curl-'\"$(date +%%s)\"'\",\n"+
		"    \"source\":\"hr/curl\",\"type\":\"%s\",\"data\":{\"email\":\"someone@fabrikam.com\",\n"+
		"    \"givenName\":\"Some\",\"surname\":\"One\",\"usageLocation\":\"PT\",\"instance\":\"service\"}}'\n",
		url, shellQuote(tokenFile), events.TypeJoined)
	return func(ctx context.Context) error { return srv.Serve(ctx, ln) }, nil
}

// shellQuote quotes a path for the printed command line when it needs it.
func shellQuote(s string) string {
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var demoUser = events.Joined{
	Email: "ana.silva@fabrikam.com", GivenName: "Ana", Surname: "Silva", UsageLocation: "PT",
	Instance: "sales", Message: "Welcome to the EU sales pipeline.",
}

// watch prints every event and dead letter as it is published, and tells
// waiters when an onboarding is complete.
func watch(nc *nats.Conn, out io.Writer) (*onboardings, error) {
	done := &onboardings{waiters: map[string]chan struct{}{}, finished: map[string]bool{}}
	start := time.Now()
	var mu sync.Mutex
	_, err := nc.Subscribe("guestflow.>", func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		elapsed := time.Since(start).Truncate(10 * time.Millisecond)
		if h := m.Header.Get(worker.HeaderReason); h != "" {
			fmt.Fprintf(out, "%8s  ✗ dead letter from %s: %s: %s\n", elapsed, m.Header.Get(worker.HeaderStep), h, m.Header.Get(worker.HeaderError))
			return
		}
		ev, err := events.Decode(m.Subject, m.Header, m.Data)
		if err != nil {
			fmt.Fprintf(out, "%8s  ? %s: %v\n", elapsed, m.Subject, err)
			return
		}
		fmt.Fprintf(out, "%8s  %-28s %s\n", elapsed, m.Subject, describe(ev))
		if ev.Type() == events.TypeOnboarded {
			done.finish(events.OnboardingID(ev))
		}
	})
	return done, err
}

// describe says in a few words what an event reports.
func describe(ev event.Event) string {
	switch ev.Type() {
	case events.TypeJoined:
		who := ev.Subject()
		if who == "" {
			// An HR system need not set subject (the curl line does not).
			var j events.Joined
			_ = ev.DataAs(&j)
			who = j.Email
		}
		return who + " joined"
	case events.TypeInvited:
		var d events.Invited
		_ = ev.DataAs(&d)
		s := "invited as " + d.UserPrincipalName
		if d.ExistingUser {
			s = "found existing user " + d.UserPrincipalName
		}
		if d.GroupID != "" {
			s += ", added to group " + d.GroupID
		}
		return s
	case events.TypeLicensed:
		var d events.Licensed
		_ = ev.DataAs(&d)
		return "profile set (" + d.UsageLocation + "), licensed " + d.SkuPartNumber
	case events.TypeRoleAssigned:
		var d events.RoleAssigned
		_ = ev.DataAs(&d)
		s := fmt.Sprintf("synced as systemuser %s, roles %v", d.SystemUserID, roleNames(d.AssignedRoles))
		if d.EmailUpdated {
			s += ", email fixed"
		}
		return s
	case events.TypeOnboarded:
		var d events.Onboarded
		_ = ev.DataAs(&d)
		if d.NotifiedAt == "" {
			return "onboarded (no mail requested) ✓"
		}
		return "notified " + d.Email + " — onboarded ✓"
	}
	return ev.Type()
}

func roleNames(rs []events.Role) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

// onboardings lets dev wait for one onboarding to finish.
type onboardings struct {
	mu       sync.Mutex
	waiters  map[string]chan struct{}
	finished map[string]bool
}

func (o *onboardings) wait(id string) <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	ch := make(chan struct{})
	if o.finished[id] {
		close(ch)
		return ch
	}
	o.waiters[id] = ch
	return ch
}

func (o *onboardings) finish(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.finished[id] = true
	if ch, ok := o.waiters[id]; ok {
		close(ch)
		delete(o.waiters, id)
	}
}
