//! `scry data`: the offline network data — what is in use and where it comes from, building a
//! new pack from the registries' CSV files, and updating it from their upstream URLs.

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
    let origin = match loaded.network_pack_path() {
        Some(path) => path.display().to_string(),
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

/// Builds a pack from AS and country CSV files, each with the name its errors give, and writes
/// it whole to a temporary file beside `output` that is then renamed over it, so a failed build
/// never leaves a half-written pack where a good one was. Returns the AS and country rows read.
fn write_pack(
    asn: &[(String, PathBuf)],
    country: &[(String, PathBuf)],
    meta: &PackMeta,
    output: &Path,
) -> anyhow::Result<(usize, usize)> {
    let mut builder = PackBuilder::default();
    let open = |path: &Path| {
        File::open(path)
            .map(BufReader::new)
            .with_context(|| format!("reading {}", path.display()))
    };
    let (mut asn_rows, mut country_rows) = (0, 0);
    for (name, path) in asn {
        asn_rows += builder.add_asn_csv(name, open(path)?)?;
    }
    for (name, path) in country {
        country_rows += builder.add_country_csv(name, open(path)?)?;
    }
    let folder = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut staged = tempfile::NamedTempFile::new_in(folder)
        .with_context(|| format!("creating a file in {}", folder.display()))?;
    builder.write(meta, std::io::BufWriter::new(staged.as_file_mut()))?;
    staged
        .persist(output)
        .with_context(|| format!("writing {}", output.display()))?;
    Ok((asn_rows, country_rows))
}

/// `scry data build`.
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
    let named = |paths: &[PathBuf]| -> Vec<(String, PathBuf)> {
        paths
            .iter()
            .map(|p| (p.display().to_string(), p.clone()))
            .collect()
    };
    let (asn_rows, country_rows) = write_pack(&named(asn), &named(country), &meta, output)?;
    let size = std::fs::metadata(output)?.len();
    eprintln!(
        "{}: {asn_rows} AS rows and {country_rows} country rows, {size} bytes",
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What `scry data update` keeps of each upstream file, in `state.json` beside the copies.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct UpstreamFile {
    etag: Option<String>,
    last_modified: Option<String>,
    /// The copy, relative to the upstream folder.
    file: String,
}

/// Rebuilds the pack from `[sources.geo] update_asn` and `update_country` when any of them
/// changed, and swaps it in by renaming over the old one: processes reading the old pack keep it,
/// new ones get the new one, nobody sees half of one. Exit 1 when a file cannot be fetched; the
/// pack in use is then left as it was.
pub(crate) fn update(loaded: &LoadedConfig, force: bool, quiet: bool) -> anyhow::Result<ExitCode> {
    use scry_sources::fetch::{Fetched, Validators, fetch_if_changed, http_client, shown};
    let geo = &loaded.config.sources.geo;
    if geo.update_asn.is_empty() || geo.update_country.is_empty() {
        return Err(crate::usage(anyhow::anyhow!(
            "[sources.geo] update_asn and update_country need at least one URL each"
        )));
    }
    let parse = |text: &String| {
        url::Url::parse(text)
            .map_err(|e| crate::usage(anyhow::anyhow!("[sources.geo] update URL {text:?}: {e}")))
    };
    let asn: Vec<url::Url> = geo.update_asn.iter().map(parse).collect::<Result<_, _>>()?;
    let country: Vec<url::Url> = geo
        .update_country
        .iter()
        .map(parse)
        .collect::<Result<_, _>>()?;
    let target = loaded.updated_pack_path();
    let folder = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let upstream = folder.join("netpack-upstream");
    std::fs::create_dir_all(&upstream)
        .with_context(|| format!("creating {}", upstream.display()))?;
    let state_path = upstream.join("state.json");
    let mut state: std::collections::BTreeMap<String, UpstreamFile> = std::fs::read(&state_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let http = http_client().map_err(|e| anyhow::anyhow!(e))?;
    let runtime = crate::runtime()?;
    let mut changed = 0;
    let mut newest_date: Option<String> = None;
    for (index, url) in asn.iter().chain(&country).enumerate() {
        let key = url.to_string();
        let known = state.get(&key);
        let copy_exists = known.is_some_and(|k| upstream.join(&k.file).exists());
        let held = match known {
            Some(k) if copy_exists && !force => Validators {
                etag: k.etag.clone(),
                last_modified: k.last_modified.clone(),
            },
            _ => Validators::default(),
        };
        let fetched = runtime
            .block_on(fetch_if_changed(&http, url, &held, &[], 1 << 30))
            .map_err(|e| anyhow::anyhow!("network data update failed, nothing changed: {e}"))?;
        match fetched {
            Fetched::NotModified => {
                if !quiet {
                    eprintln!("{}: not modified", shown(url));
                }
            }
            Fetched::Body { bytes, validators } => {
                let name = url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .filter(|n| !n.is_empty())
                    .unwrap_or("data.csv");
                let file = format!("{index}-{name}");
                let mut staged = tempfile::NamedTempFile::new_in(&upstream)?;
                std::io::Write::write_all(staged.as_file_mut(), &bytes)?;
                staged
                    .persist(upstream.join(&file))
                    .with_context(|| format!("writing {}", upstream.join(&file).display()))?;
                if !quiet {
                    eprintln!("{}: {} bytes", shown(url), bytes.len());
                }
                if let Some(modified) = validators
                    .last_modified
                    .as_deref()
                    .and_then(|text| httpdate::parse_http_date(text).ok())
                {
                    let date = scry_core::calendar::date_text(unix_ms(modified));
                    newest_date = newest_date.max(Some(date));
                }
                state.insert(
                    key,
                    UpstreamFile {
                        etag: validators.etag,
                        last_modified: validators.last_modified,
                        file,
                    },
                );
                changed += 1;
            }
        }
    }
    std::fs::write(&state_path, serde_json::to_vec_pretty(&state)?)
        .with_context(|| format!("writing {}", state_path.display()))?;
    if changed == 0 && target.exists() {
        eprintln!("network data is up to date: {}", target.display());
        return Ok(ExitCode::SUCCESS);
    }
    let today = scry_core::calendar::date_text(unix_ms(std::time::SystemTime::now()));
    let data_as_of = newest_date.unwrap_or_else(|| today.clone());
    let source = |provides: &str, urls: &[url::Url], attribution: &str| scry_offline::DataSource {
        provides: provides.into(),
        package: urls.iter().map(shown).collect::<Vec<_>>().join(" "),
        license: "CC BY 4.0".into(),
        attribution: attribution.into(),
        data_as_of: data_as_of.clone(),
    };
    let meta = PackMeta {
        built: today,
        sources: vec![
            source(
                "asn",
                &asn,
                "RouteViews, DB-IP (db-ip.com) and the NRO, via ip-location-db",
            ),
            source(
                "country",
                &country,
                "NRO (the five Regional Internet Registries), via ip-location-db",
            ),
        ],
    };
    let copies = |urls: &[url::Url]| -> Vec<(String, PathBuf)> {
        urls.iter()
            .map(|url| (shown(url), upstream.join(&state[&url.to_string()].file)))
            .collect()
    };
    let (asn_rows, country_rows) = write_pack(&copies(&asn), &copies(&country), &meta, &target)?;
    eprintln!(
        "network data updated: {asn_rows} AS rows and {country_rows} country rows ({changed} of {} files changed), {}",
        asn.len() + country.len(),
        target.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn unix_ms(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
