package main

import (
	"github.com/spf13/cobra"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/timeline"
)

// noTenantNote says how to get the acceptance state when status runs
// without a tenant.
const noTenantNote = "not shown: no tenant configured; pass --config FILE with tenant.id (or set GUESTFLOW_TENANT_ID) " +
	"and AZURE_CLIENT_ID / AZURE_CLIENT_SECRET to read the guest's acceptance state from Graph"

func newStatus(g *globals) *cobra.Command {
	var (
		natsURL natsFlag
		asJSON  bool
		scanAll bool
	)
	cmd := &cobra.Command{
		Use:   "status <email|onboardingid>",
		Short: "Show the onboarding timeline of one user: each step, when, attempts, dead letters",
		Long: `Show where an onboarding stands, from the GUESTFLOW stream (events are kept 30 days by
default) and the dead letters in GUESTFLOW_DLQ:

  - every event of the onboarding in order: the step that emitted it (joined, invite,
    license, role, notify; "replay" for a dead letter put back by 'guestflow dlq
    replay'), when, how many deliveries the step needed, and what it did;
  - its dead letters: step, reason, error, failure time, sequence;
  - the guest's invitation acceptance state (PendingAcceptance or Accepted), read from
    Graph when a tenant is configured (--config, with AZURE_CLIENT_ID /
    AZURE_CLIENT_SECRET or another azidentity credential);
  - a last line: onboarded, waiting at <step>, or dead-lettered at <step> with the
    command that replays it.

The argument is an onboarding id (the joined event's id, which 'guestflow publish'
prints) or an email address, compared case-insensitively. One address may have
several onboardings; each is shown on its own.

The workers keep an index, GUESTFLOW_INDEX, of which events belong to which onboarding
id and address, so status reads only that person's events, plus what the index cannot
know of yet: events stored before it existed, and inputs a step has not received yet.
A lookup reads an address's newest 100 onboardings and an onboarding's newest 100 events.
When the index has nothing for the argument (only events from before it existed, or
whose indexing failed) or cannot be read, status reads the whole event log instead,
which takes a moment on a large stream. --scan always reads the whole event log.`,
		Example: `  guestflow status ana.silva@fabrikam.com
  guestflow status 7e8b8f0a-2c75-4c09-90bc-c4984599804e
  guestflow status ana.silva@fabrikam.com --json | jq '.[].state'
  AZURE_CLIENT_ID=… AZURE_CLIENT_SECRET=… guestflow status ana.silva@fabrikam.com --config guestflow.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadForNATS(cmd, g, natsURL)
			if err != nil {
				return err
			}
			nc, js, err := app.Connect(cfg.NATS, "guestflow-status")
			if err != nil {
				return err
			}
			defer nc.Close()
			o := timeline.Options{JSON: asJSON, DirectoryNote: noTenantNote, Scan: scanAll}
			if cfg.Tenant.ID != "" {
				if dir, err := app.NewGraph(cfg, credentialsFromEnv()); err != nil {
					o.DirectoryNote = "not shown: " + err.Error()
				} else {
					o.Directory = dir
				}
			}
			_, err = timeline.Status(cmd.Context(), js, args[0], o, cmd.OutOrStdout())
			return err
		},
	}
	natsURL.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON array of onboardings instead of text")
	cmd.Flags().BoolVar(&scanAll, "scan", false, "read the whole event log instead of looking the argument up in the index")
	return cmd
}
