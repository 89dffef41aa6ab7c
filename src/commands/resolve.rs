//! `kubectl astro-sha resolve IMAGE...`: digests for many references at once.

use clap::Args;
use serde::Serialize;

use crate::args::{GlobalArgs, OutputFormat, RegistryArgs};
use crate::core::resolution::group_failures;
use crate::error::ExitStatus;
use crate::error::{Error, Result};
use crate::output::{self, Table};
use crate::registry::{ImageRef, Resolved};

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  kubectl astro-sha resolve quay.io/astronomer/astro-runtime:12.1.0 \\\n    astrocrpublic.azurecr.io/runtime:3.1-2\n  kubectl astro-sha resolve --platform linux/arm64 -o json \\\n    quay.io/astronomer/astro-runtime:12.1.0"
)]
pub(crate) struct ResolveArgs {
    /// Image references ([registry/]repository[:tag][@digest]); `-` reads them from stdin, one per line
    #[arg(required = true, value_name = "IMAGE")]
    pub(crate) images: Vec<String>,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    image: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    resolved: Option<Resolved>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct Report {
    items: Vec<Item>,
}

pub(crate) async fn run(g: &GlobalArgs, args: &ResolveArgs) -> Result<ExitStatus> {
    let mut inputs = vec![];
    for i in &args.images {
        if i == "-" {
            let text = tokio::task::spawn_blocking(|| std::io::read_to_string(std::io::stdin()))
                .await
                .map_err(|e| Error::new(format!("reading stdin: {e}")))??;
            inputs.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            );
        } else {
            inputs.push(i.clone());
        }
    }
    // Bad input stops the run before any request is made.
    let mut refs = vec![];
    for i in &inputs {
        refs.push(ImageRef::parse(i).map_err(|e| {
            Error::new(e.to_string())
                .hint("write it as [registry/]repository[:tag][@sha256:digest]")
        })?);
    }
    let resolver = args.registry.resolver(true)?;
    let pb = output::progress(refs.len() as u64, "resolving");
    let results = resolver.resolve_many(&refs, &pb).await;
    pb.finish_and_clear();

    // Each failure once: a host's (TLS, DNS) with the number of references it cost.
    let failures = refs
        .iter()
        .zip(&results)
        .filter_map(|(r, res)| res.as_ref().err().map(|e| (r.original(), e)));
    for f in group_failures(failures) {
        eprintln!("error: {}", f.message());
        if let Some(h) = f.error.hint() {
            eprintln!("  hint: {h}");
        }
    }
    let mut failed = 0;
    let mut items = vec![];
    for (r, res) in refs.iter().zip(results) {
        match res {
            Ok(resolved) => items.push(Item {
                image: r.original().to_string(),
                resolved: Some(resolved),
                error: None,
            }),
            Err(e) => {
                failed += 1;
                items.push(Item {
                    image: r.original().to_string(),
                    resolved: None,
                    error: Some(e.to_string()),
                });
            }
        }
    }
    let rep = Report { items };
    match output::structured(&rep, g.output)? {
        Some(s) => output::print(&s)?,
        None => output::print(&render_table(
            &rep.items,
            g.output == OutputFormat::Wide,
            g.no_headers,
        ))?,
    }
    Ok(ExitStatus::not_ok_if(failed > 0))
}

/// The table. The digest is the command's answer, so the default table prints it whole (and a
/// narrow terminal never shortens it); with the platforms of an index it fits 160 columns for
/// real references (`quay.io/astronomer/astro-runtime:13.8.0`). `-o wide` appends the media
/// type, the `--platform` digest and the reference actually asked (a mirror's).
fn render_table(items: &[Item], wide: bool, no_headers: bool) -> String {
    let mut headers = vec!["IMAGE", "DIGEST", "PLATFORMS"];
    if wide {
        headers.extend(["MEDIA TYPE", "PLATFORM DIGEST", "SOURCE"]);
    }
    let mut t = Table::new(headers).keep_whole(&["DIGEST", "PLATFORM DIGEST"]);
    for it in items {
        let Some(r) = &it.resolved else {
            let mut row = vec![it.image.clone(), "-".into(), "error".into()];
            if wide {
                row.extend(["-".into(), "-".into(), "-".into()]);
            }
            t.push(row);
            continue;
        };
        let platforms = if r.platforms.is_empty() {
            "-".to_string()
        } else {
            r.platforms
                .iter()
                .map(|p| p.platform.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut row = vec![it.image.clone(), r.digest.to_string(), platforms];
        if wide {
            row.extend([
                output::media_type_short(&r.media_type).to_string(),
                r.platform_digest
                    .as_ref()
                    .map_or_else(|| "-".into(), |d| d.to_string()),
                r.source.clone(),
            ]);
        }
        t.push(row);
    }
    t.render(no_headers)
}
