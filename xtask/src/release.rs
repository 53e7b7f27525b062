//! `cargo xtask release VERSION [--dry-run]`.
//!
//! Steps, each printed before it runs: require a clean git tree; run `cargo xtask ci`; set
//! the shared version in the root `Cargo.toml` (workspace version and the internal
//! dependencies' versions); move `CHANGELOG.md`'s Unreleased section under the version with
//! today's date; check that every published crate packages, in dependency order; commit and
//! tag `vVERSION`; and only then (never with `--dry-run`) `cargo publish` each crate in that
//! order. `--dry-run` writes nothing in the repository: edits are computed and shown,
//! packaging goes to a temporary target folder, and nothing is committed, tagged or published.

use std::path::Path;
use std::process::Command;

use crate::{Result, cargo, run};

/// Publication order: every crate after the crates it depends on.
pub const ORDER: &[&str] = &[
    "storage-core",
    "storage-layers",
    "storage-s3",
    "storage-r2",
    "storage-router",
    "storage-cas",
    "storage-manifest",
    "strata",
    "strata-cli",
];

/// Check `v` is `MAJOR.MINOR.PATCH` (with an optional `-pre` suffix).
pub fn validate_version(v: &str) -> Result<()> {
    let core = v.split('-').next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("`{v}` is not a version; write MAJOR.MINOR.PATCH, e.g. 0.2.0").into());
    }
    Ok(())
}

/// The root manifest with every `version = "OLD"` of the workspace and internal crates set to `new`.
pub fn bump_manifest(text: &str, new: &str) -> String {
    text.lines()
        .map(|line| {
            let t = line.trim_start();
            let internal = ORDER
                .iter()
                .chain(["strata-testkit"].iter())
                .any(|c| t.starts_with(&format!("{c} = {{")));
            if t.starts_with("version = \"") && !line.starts_with(' ') {
                format!("version = \"{new}\"")
            } else if internal && line.contains("version = \"") {
                let start = line.find("version = \"").expect("checked") + "version = \"".len();
                let end = start + line[start..].find('"').unwrap_or(0);
                format!("{}{}{}", &line[..start], new, &line[end..])
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The changelog with `## [Unreleased]` moved under `## [VERSION] - DATE` and a fresh,
/// empty Unreleased section above it.
pub fn roll_changelog(text: &str, version: &str, date: &str) -> Result<String> {
    let marker = "## [Unreleased]";
    let Some(pos) = text.find(marker) else {
        return Err("CHANGELOG.md has no `## [Unreleased]` section".into());
    };
    let body_start = pos + marker.len();
    let rest = &text[body_start..];
    let body_end = rest
        .find("\n## [")
        .map(|i| body_start + i)
        .unwrap_or(text.len());
    let body = text[body_start..body_end].trim();
    if body.is_empty() {
        return Err("the Unreleased section of CHANGELOG.md is empty: nothing to release".into());
    }
    Ok(format!(
        "{}{marker}\n\n## [{version}] - {date}\n\n{body}\n{}",
        &text[..pos],
        &text[body_end..]
    ))
}

fn today() -> String {
    let out = Command::new("date").arg("+%Y-%m-%d").output().ok();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown-date".into())
}

/// Run the release.
pub fn release(root: &Path, version: &str, dry_run: bool) -> Result<()> {
    validate_version(version)?;
    let step = |n: u32, what: &str| {
        println!(
            "xtask: release step {n}: {what}{}",
            if dry_run { " (dry run)" } else { "" }
        )
    };

    step(1, "the git tree must be clean");
    let status = Command::new("git")
        .current_dir(root)
        .args(["status", "--porcelain"])
        .output()?;
    let dirty = String::from_utf8_lossy(&status.stdout).to_string();
    if !dirty.trim().is_empty() {
        return Err(format!(
            "the tree has uncommitted changes; commit or stash them first:\n{dirty}"
        )
        .into());
    }

    step(2, "cargo xtask ci must pass");
    if dry_run {
        println!("xtask:   would run: cargo xtask ci");
    } else {
        crate::ci::ci(false, false)?;
    }

    step(3, &format!("set the workspace version to {version}"));
    let manifest_path = root.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path)?;
    let bumped = bump_manifest(&manifest, version);
    for (old, new) in manifest.lines().zip(bumped.lines()).filter(|(a, b)| a != b) {
        println!("xtask:   Cargo.toml: `{}` -> `{}`", old.trim(), new.trim());
    }

    step(4, "move the Unreleased changelog section under the version");
    let changelog_path = root.join("CHANGELOG.md");
    let rolled = roll_changelog(
        &std::fs::read_to_string(&changelog_path)?,
        version,
        &today(),
    )?;
    println!(
        "xtask:   CHANGELOG.md: `## [{version}] - {}` added under `## [Unreleased]`",
        today()
    );

    if !dry_run {
        std::fs::write(&manifest_path, &bumped)?;
        std::fs::write(&changelog_path, &rolled)?;
    }

    step(
        5,
        &format!("package every crate in order: {}", ORDER.join(", ")),
    );
    let tmp_target = std::env::temp_dir().join(format!("strata-release-{}", std::process::id()));
    let mut package = cargo();
    package
        .current_dir(root)
        .args(["package", "--no-verify", "--allow-dirty"]);
    for c in ORDER {
        package.args(["-p", c]);
    }
    // Packaging writes only into a throw-away target folder.
    package.env("CARGO_TARGET_DIR", &tmp_target);
    let packaged = run(&mut package);
    let _ = std::fs::remove_dir_all(&tmp_target);
    packaged?;

    step(6, &format!("commit and tag v{version}"));
    step(7, &format!("publish in order: {}", ORDER.join(" → ")));
    if dry_run {
        println!("xtask:   would run: git commit -am \"Release {version}\" && git tag v{version}");
        for c in ORDER {
            println!("xtask:   would run: cargo publish -p {c}");
        }
        println!("xtask: dry run complete: nothing was written, tagged or published");
        return Ok(());
    }
    run(Command::new("git").current_dir(root).args([
        "commit",
        "-am",
        &format!("Release {version}"),
    ]))?;
    run(Command::new("git")
        .current_dir(root)
        .args(["tag", &format!("v{version}")]))?;
    for c in ORDER {
        run(cargo().current_dir(root).args(["publish", "-p", c]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        validate_version("1.2.3").unwrap();
        validate_version("0.2.0-rc.1").unwrap();
        assert!(validate_version("1.2").is_err());
        assert!(validate_version("v1.2.3").is_err());
    }

    #[test]
    fn bump_touches_workspace_and_internal_versions_only() {
        let text = "[workspace.package]\nversion = \"0.1.0\"\n\n[workspace.dependencies]\nstorage-core = { path = \"crates/storage-core\", version = \"0.1.0\" }\nserde = { version = \"1\" }\n";
        let out = bump_manifest(text, "0.2.0");
        assert!(out.contains("version = \"0.2.0\"\n"));
        assert!(
            out.contains("storage-core = { path = \"crates/storage-core\", version = \"0.2.0\" }")
        );
        assert!(out.contains("serde = { version = \"1\" }"));
    }

    #[test]
    fn changelog_rolls() {
        let text = "# Changelog\n\n## [Unreleased]\n\n### Added\n- a thing\n\n## [0.1.0] - 2026-01-01\n- old\n";
        let out = roll_changelog(text, "0.2.0", "2026-11-23").unwrap();
        assert!(
            out.contains("## [Unreleased]\n\n## [0.2.0] - 2026-11-23\n\n### Added\n- a thing\n"),
            "{out}"
        );
        assert!(out.contains("## [0.1.0] - 2026-01-01"));
        assert!(roll_changelog("# Changelog\n\n## [Unreleased]\n\n", "1.0.0", "d").is_err());
    }

    #[test]
    fn the_repository_manifest_bumps_cleanly() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let out = bump_manifest(&text, "9.9.9");
        for c in ORDER {
            if let Some(line) = out.lines().find(|l| l.starts_with(&format!("{c} = {{"))) {
                assert!(line.contains("version = \"9.9.9\""), "{line}");
            }
        }
    }
}
