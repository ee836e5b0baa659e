//! `scry data`: the offline network data — what is in use and where it comes from, and building a
//! new pack from the registries' CSV files.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use scry_engine::config::LoadedConfig;
use scry_offline::{PackBuilder, PackMeta};
use serde_json::json;

use crate::cli::ShowFormat;

/// What network data is in use, where it comes from and under which licence.
pub(crate) fn status(loaded: &LoadedConfig, format: ShowFormat) -> anyhow::Result<ExitCode> {
    let Some(pack) = loaded.network_pack().map_err(crate::usage)? else {
        eprintln!("the offline network data is turned off ([sources.geo] enabled = false)");
        return Ok(ExitCode::SUCCESS);
    };
    let origin = match &loaded.config.sources.geo.pack {
        Some(file) => loaded.resolve(file).display().to_string(),
        None => "built in".to_owned(),
    };
    let (v4, v6) = pack.range_counts();
    let meta = pack.meta();
    match format {
        ShowFormat::Json => {
            let report = json!({
                "pack": origin,
                "built": meta.built,
                "ipv4_ranges": v4,
                "ipv6_ranges": v6,
                "sources": meta.sources.iter().map(|s| json!({
                    "provides": s.provides, "package": s.package, "license": s.license,
                    "attribution": s.attribution, "data_as_of": s.data_as_of,
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        ShowFormat::Text => {
            println!("network data: {origin}, built {}", meta.built);
            println!("ranges: {v4} IPv4, {v6} IPv6");
            for source in &meta.sources {
                println!(
                    "{}: {} (data as of {}), {}; credit: {}",
                    source.provides,
                    source.package,
                    source.data_as_of,
                    source.license,
                    source.attribution
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds a pack from CSV files; writes it whole to a temporary file first, so a failed build
/// never leaves a half-written pack where a good one was.
pub(crate) fn build(
    meta: &Path,
    asn: &[PathBuf],
    country: &[PathBuf],
    output: &Path,
) -> anyhow::Result<ExitCode> {
    let meta: PackMeta = serde_json::from_reader(BufReader::new(
        File::open(meta).with_context(|| format!("reading {}", meta.display()))?,
    ))
    .with_context(|| format!("{} is not pack metadata", meta.display()))?;
    let mut builder = PackBuilder::default();
    let open = |path: &Path| {
        File::open(path)
            .map(BufReader::new)
            .with_context(|| format!("reading {}", path.display()))
    };
    let (mut asn_rows, mut country_rows) = (0, 0);
    for path in asn {
        asn_rows += builder.add_asn_csv(&path.display().to_string(), open(path)?)?;
    }
    for path in country {
        country_rows += builder.add_country_csv(&path.display().to_string(), open(path)?)?;
    }
    let folder = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut staged = tempfile::NamedTempFile::new_in(folder)
        .with_context(|| format!("creating a file in {}", folder.display()))?;
    builder.write(&meta, std::io::BufWriter::new(staged.as_file_mut()))?;
    staged
        .persist(output)
        .with_context(|| format!("writing {}", output.display()))?;
    let size = std::fs::metadata(output)?.len();
    eprintln!(
        "{}: {asn_rows} AS rows and {country_rows} country rows, {size} bytes",
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}
