package main

import (
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/config"
)

// natsFlag is the --nats flag of every command that connects to NATS: the
// server URL, or several separated by commas, in place of the
// configuration's nats.url or nats.urls. Everything else about the
// connection — credentials, TLS, the inbox prefix — comes from the
// configuration and its GUESTFLOW_NATS_… variables only, for every command
// alike: a secret on a command line is visible to every user of the machine
// (ps, /proc, shell history).
type natsFlag string

func (f *natsFlag) register(fs *pflag.FlagSet) {
	fs.StringVar((*string)(f), "nats", "",
		"NATS server URL, or several separated by commas (default: nats.url of the configuration, else "+config.DefaultNATSURL+
			"); credentials and TLS come from the configuration's nats section")
}

// apply puts the flag's servers, when it was given, into n.
func (f natsFlag) apply(n *config.NATS) {
	if f != "" {
		n.SetServers(string(f))
	}
}

// loadForNATS loads the configuration for a command that needs only part of
// it (its NATS section, and what the command itself reads) and applies
// --nats. app.Connect validates the NATS section.
func loadForNATS(cmd *cobra.Command, g *globals, f natsFlag) (config.Config, error) {
	cfg, err := config.LoadUnvalidated(g.configPath, cmd.Flags().Changed("config"), os.Environ())
	if err != nil {
		return config.Config{}, err
	}
	f.apply(&cfg.NATS)
	return cfg, nil
}

// connectOperator connects an operator's command (status, dlq) as the
// configuration and --nats say.
func connectOperator(cmd *cobra.Command, g *globals, f natsFlag, name string) (*nats.Conn, jetstream.JetStream, error) {
	cfg, err := loadForNATS(cmd, g, f)
	if err != nil {
		return nil, nil, err
	}
	return app.Connect(cfg.NATS, name)
}
