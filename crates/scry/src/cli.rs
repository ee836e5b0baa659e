//! The command-line shape of `scry`: global options and subcommands, with examples in `--help`.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use scry_engine::input::InputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "scry",
    version,
    about = "Threat-intelligence enrichment and prioritization",
    long_about = "scry reads indicators (IPs, CIDR blocks, domains, URLs) from files, feeds and analysts, \
                  enriches them, explains their priority and acts on them.",
    after_help = "Examples:\n  scry enrich iocs.txt\n  cat report.eml | scry enrich --input-format text -\n  scry config init"
)]
pub(crate) struct Cli {
    /// Configuration file [default: ./scry.toml, else $XDG_CONFIG_HOME/scry/scry.toml]
    #[arg(long, global = true, env = "SCRY_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Store URL (sqlite:///path or postgres://…) [default: SQLite file in $XDG_DATA_HOME/scry]
    #[arg(long, global = true, env = "SCRY_STORE", value_name = "URL")]
    pub(crate) store: Option<String>,

    /// More detail on stderr (-v: debug, -vv: trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,

    /// Only errors on stderr: no progress, no summary, no rejected-line reports
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Read indicators, enrich them and print them by priority
    #[command(after_help = "Examples:\n  \
        scry enrich iocs.txt                       # a list, a CSV, JSON Lines or a STIX bundle (detected)\n  \
        scry enrich feed.csv.gz alerts.jsonl       # several inputs, gzip read transparently\n  \
        pbpaste | scry enrich --input-format text -   # every indicator in pasted prose\n  \
        scry enrich --format json iocs.txt > out.json\n  \
        scry enrich --tlp amber --format csv iocs.txt")]
    Enrich(EnrichArgs),
    /// Check or create the configuration file
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Args)]
pub(crate) struct EnrichArgs {
    /// Input files; `-` (or nothing, when stdin is piped) reads standard input
    #[arg(value_name = "INPUT")]
    pub(crate) inputs: Vec<String>,

    /// Input format: auto (from the file name, else the content), lines, text, csv, jsonl or stix
    #[arg(long, default_value = "auto", value_parser = InputFormat::from_str, value_name = "FORMAT")]
    pub(crate) input_format: InputFormat,

    /// Output format
    #[arg(long, short = 'f', value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) format: OutputFormat,

    /// TLP for indicators whose input states none (clear, green, amber, amber+strict, red)
    #[arg(long, value_name = "LEVEL")]
    pub(crate) tlp: Option<String>,

    /// Ask sources again even when a cached answer is still fresh
    #[arg(long)]
    pub(crate) force: bool,

    /// Indicators enriched at once [default: from the configuration, 8]
    #[arg(long, value_name = "N")]
    pub(crate) concurrency: Option<usize>,

    /// Never show the progress bar
    #[arg(long)]
    pub(crate) no_progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Aligned columns, coloured on a terminal
    Table,
    /// One JSON array
    Json,
    /// One JSON object per line
    Jsonl,
    /// CSV with a header row
    Csv,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Load and validate the configuration, and say what it resolves to
    #[command(
        after_help = "Examples:\n  scry config check\n  scry --config /etc/scry/scry.toml config check"
    )]
    Check,
    /// Write a commented example configuration
    #[command(
        after_help = "Examples:\n  scry config init            # writes ./scry.toml\n  scry config init ~/.config/scry/scry.toml"
    )]
    Init {
        /// Where to write it
        #[arg(default_value = "scry.toml")]
        path: PathBuf,
        /// Replace an existing file
        #[arg(long)]
        force: bool,
    },
}
