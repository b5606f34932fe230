package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/guestflow/guestflow/internal/graphsim"
)

// simFlags are the emulator's knobs, shared by `graphsim` and `dev`.
type simFlags struct {
	addr         string
	tenantID     string
	clientID     string
	clientSecret string
	writeLimit   string
	tenantWrites string
	ruLimit      string
	inviteLimit  string
	mailLimit    string
	neighbour    string
	dvLimit      string
	dvConc       int
	faultRate    float64
	dropRate     float64
	latency      time.Duration
	syncDelay    time.Duration
	replLag      time.Duration
	seats        int
	allowRemote  bool
	deny         []string
}

// register adds the flags; addrFlag names the listen-address flag, which
// is --addr on graphsim and --graphsim-addr where it sits beside NATS's.
func (f *simFlags) register(cmd *cobra.Command, addrFlag string) {
	fl := cmd.Flags()
	fl.StringVar(&f.addr, addrFlag, "127.0.0.1:9443", "emulator listen address; a loopback address unless --allow-remote")
	fl.StringArrayVar(&f.deny, "deny", nil,
		`answer this route 403 as for a missing permission, spelled as /_sim/stats spells it (repeatable), e.g. "POST /v1.0/users/{id}/sendMail"`)
	fl.BoolVar(&f.allowRemote, "allow-remote", false,
		"let the emulator listen on a non-loopback address: it issues tokens to anyone who knows its well-known dev secret")
	fl.StringVar(&f.tenantID, "tenant-id", graphsim.DefaultTenantID, "the one tenant the emulator accepts")
	fl.StringVar(&f.clientID, "client-id", graphsim.DefaultClientID, "the one app (client id) the emulator accepts")
	fl.StringVar(&f.clientSecret, "client-secret", graphsim.DefaultClientSecret, "that app's secret")
	fl.StringVar(&f.writeLimit, "write-limit", "",
		"Graph identity writes per app and tenant, N/DURATION (Microsoft's: "+graphsim.MicrosoftWriteLimit+"); empty = unlimited")
	fl.StringVar(&f.tenantWrites, "tenant-write-limit", "",
		"Graph identity writes per tenant across all apps, the neighbour's included, N/DURATION (Microsoft's: "+graphsim.MicrosoftTenantWriteLimit+"); empty = unlimited")
	fl.StringVar(&f.ruLimit, "ru-limit", "",
		"Graph identity resource units per app and tenant, N/DURATION (Microsoft's: "+graphsim.MicrosoftResourceUnitLimitS+", "+
			graphsim.MicrosoftResourceUnitLimitM+" or "+graphsim.MicrosoftResourceUnitLimitL+" by tenant size); empty = unlimited")
	fl.StringVar(&f.inviteLimit, "invite-limit", "", "invitations per tenant, N/DURATION (Microsoft's: "+graphsim.MicrosoftInviteLimit+"); empty = unlimited")
	fl.StringVar(&f.mailLimit, "mail-limit", "",
		fmt.Sprintf("sendMail calls per app and mailbox, N/DURATION (Microsoft's: %s), and then at most %d at once; empty = unlimited",
			graphsim.MicrosoftMailLimit, graphsim.MicrosoftMailConcurrency))
	fl.StringVar(&f.neighbour, "neighbour-rate", "",
		`another app's tenant-wide writes, RATE[@OFFSET],... from the emulator's start, e.g. "30/s" or "0/s,30/s@20s,0/s@40s"; empty = none`)
	fl.StringVar(&f.dvLimit, "dataverse-limit", "",
		"Dataverse requests per instance, N/DURATION (Microsoft's service protection: "+graphsim.MicrosoftDataverseLimit+"); empty = unlimited")
	fl.IntVar(&f.dvConc, "dataverse-concurrency", 0,
		fmt.Sprintf("Dataverse requests at once per instance (Microsoft's: %d); 0 = unlimited", graphsim.MicrosoftDataverseConcurrency))
	fl.Float64Var(&f.faultRate, "fault-rate", 0, "share of API calls answered 429/500/503/504 (0-1)")
	fl.Float64Var(&f.dropRate, "drop-rate", 0, "share of API calls whose connection is dropped without an answer (0-1)")
	fl.DurationVar(&f.latency, "latency", 0, "latency added to every API call")
	fl.DurationVar(&f.syncDelay, "sync-delay", 2*time.Second, "delay before a licensed user appears in Dataverse")
	fl.DurationVar(&f.replLag, "replication-lag", 0, "how long a just-invited user is invisible to group adds, updates and license assignment")
	fl.IntVar(&f.seats, "seats", 1000, "enabled seats per license SKU")
}

// start builds and starts the emulator.
func (f *simFlags) start() (*graphsim.Sim, error) {
	wl, err := graphsim.ParseLimit(f.writeLimit)
	if err != nil {
		return nil, fmt.Errorf("--write-limit: %w", err)
	}
	il, err := graphsim.ParseLimit(f.inviteLimit)
	if err != nil {
		return nil, fmt.Errorf("--invite-limit: %w", err)
	}
	tl, err := graphsim.ParseLimit(f.tenantWrites)
	if err != nil {
		return nil, fmt.Errorf("--tenant-write-limit: %w", err)
	}
	rl, err := graphsim.ParseLimit(f.ruLimit)
	if err != nil {
		return nil, fmt.Errorf("--ru-limit: %w", err)
	}
	ml, err := graphsim.ParseLimit(f.mailLimit)
	if err != nil {
		return nil, fmt.Errorf("--mail-limit: %w", err)
	}
	nb, err := graphsim.ParseSchedule(f.neighbour)
	if err != nil {
		return nil, fmt.Errorf("--neighbour-rate: %w", err)
	}
	dl, err := graphsim.ParseLimit(f.dvLimit)
	if err != nil {
		return nil, fmt.Errorf("--dataverse-limit: %w", err)
	}
	if f.faultRate < 0 || f.faultRate > 1 || f.dropRate < 0 || f.dropRate > 1 {
		return nil, fmt.Errorf("--fault-rate %v / --drop-rate %v: must be between 0 and 1", f.faultRate, f.dropRate)
	}
	if f.seats < 0 || f.syncDelay < 0 || f.latency < 0 || f.replLag < 0 || f.dvConc < 0 {
		return nil, fmt.Errorf("--seats, --sync-delay, --latency, --replication-lag and --dataverse-concurrency cannot be negative")
	}
	// In Options a zero means "the default"; on the command line it means zero.
	syncDelay, seats := f.syncDelay, f.seats
	if syncDelay == 0 {
		syncDelay = -1
	}
	if seats == 0 {
		seats = -1
	}
	sim, err := graphsim.New(graphsim.Options{
		TenantID: f.tenantID, ClientID: f.clientID, ClientSecret: f.clientSecret,
		WriteLimit: wl, TenantWriteLimit: tl, ResourceUnitLimit: rl, InviteLimit: il, MailLimit: ml, Neighbour: nb,
		DataverseLimit: dl, DataverseConcurrency: f.dvConc, FaultRate: f.faultRate, DropRate: f.dropRate, Latency: f.latency,
		SyncDelay: syncDelay, Seats: seats, ReplicationLag: f.replLag, Deny: f.deny,
	})
	if err != nil {
		return nil, err
	}
	if err := loopbackOnly(f.addr, f.allowRemote); err != nil {
		return nil, err
	}
	if err := sim.Start(f.addr); err != nil {
		return nil, fmt.Errorf("emulator on %s: %w", f.addr, err)
	}
	return sim, nil
}

// loopbackOnly refuses a listen address other machines could reach,
// unless allowed: the emulator's secret is printed in its --help and its
// tokens open everything it serves, so it is meant for this machine only.
// A host name counts as loopback only when every address it resolves to
// is one; the wildcard (":9443", "0.0.0.0") is not loopback.
func loopbackOnly(addr string, allowed bool) error {
	if allowed {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("emulator address %q: %w", addr, err)
	}
	ips, err := net.LookupIP(host)
	if host == "" {
		ips, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("emulator address %q: %w", addr, err)
	}
	loopback := len(ips) > 0
	for _, ip := range ips {
		loopback = loopback && ip.IsLoopback()
	}
	if !loopback {
		return fmt.Errorf("the emulator listens on loopback addresses only, and %q is not one: it accepts a well-known client secret, so anyone who can reach it gets tokens; use 127.0.0.1, or pass --allow-remote if you really mean to expose it", addr)
	}
	return nil
}

func newGraphsim(g *globals) *cobra.Command {
	f := &simFlags{}
	var of opsFlags
	var caOut, printConfig string
	cmd := &cobra.Command{
		Use:   "graphsim",
		Short: "Run the Microsoft Graph / Dataverse emulator alone",
		Long: `Run the emulator: a real HTTPS server with its own CA that speaks the Entra ID token
endpoint, the Graph v1.0 calls and the Dataverse Web API calls guestflow makes, with
Microsoft's status codes, error bodies, preconditions and throttling. Its seeded tenant
has the instances sales (with a security group), service and legacy.

Inspection API (plain JSON): /_sim/users, /_sim/instances, /_sim/mail, /_sim/skus,
/_sim/stats, /_sim/instances/{instance}/systemusers.`,
		Example: `  guestflow graphsim --print-config dev.yaml
  AZURE_CLIENT_ID=guestflow-dev AZURE_CLIENT_SECRET=guestflow-dev-secret \
    guestflow worker all --config dev.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sim, err := f.start()
			if err != nil {
				return err
			}
			defer sim.Close()
			if printConfig != "" && caOut == "" {
				caOut = filepath.Join(filepath.Dir(printConfig), "graphsim-ca.pem")
			}
			if caOut != "" {
				if err := os.WriteFile(caOut, sim.CAPEM(), 0o644); err != nil {
					return err
				}
			}
			if printConfig != "" {
				if err := writeSimConfig(sim, printConfig, caOut); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "graphsim listening on %s (tenant %s, client %s)\n", sim.URL(), f.tenantID, f.clientID)
			if printConfig != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "configuration written to %s, CA to %s\n", printConfig, caOut)
			}
			// Ready once listening, which it is by now.
			srv, err := of.start(cmd.Context(), g.logger())
			if err != nil {
				return err
			}
			if srv != nil {
				defer srv.Shutdown()
				fmt.Fprintf(cmd.OutOrStdout(), "ops server on http://%s (/livez, /readyz, /metrics)\n", srv.Addr())
			}
			<-cmd.Context().Done()
			return nil
		},
	}
	f.register(cmd, "addr")
	of.register(cmd, "")
	cmd.Flags().StringVar(&caOut, "ca-out", "", "write the emulator's CA certificate (PEM) to this file")
	cmd.Flags().StringVar(&printConfig, "print-config", "", "write a guestflow.yaml for the seeded tenant to this file (the CA goes beside it unless --ca-out)")
	return cmd
}

// writeSimConfig writes the seeded tenant's configuration with caFile
// relative to the config file's folder, which is how config.Load resolves a
// relative caFile, so the pair can be moved together.
func writeSimConfig(sim *graphsim.Sim, path, caFile string) error {
	cfg := sim.Config()
	cfg.Tenant.CAFile = caFile
	dir, err1 := filepath.Abs(filepath.Dir(path))
	ca, err2 := filepath.Abs(caFile)
	if err1 == nil && err2 == nil {
		if rel, err := filepath.Rel(dir, ca); err == nil {
			cfg.Tenant.CAFile = rel
		}
	}
	b, err := cfg.Marshal()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
