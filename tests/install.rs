//! What the Debian package (`scripts/build-deb.sh`) takes from the program: the version line,
//! the manual pages, the completions, and the photo a file manager passes.

mod common;

use clap::Parser;
use common::layerinv;
use layerinv::cli::{Cli, Command};
use std::path::Path;

#[test]
fn version_names_the_commit_and_the_features() {
    let o = layerinv(&["--version"]);
    assert!(o.status.success());
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(v.starts_with(&format!("layerinv {} (commit ", env!("CARGO_PKG_VERSION"))), "{v}");
    assert!(v.contains("; features: "), "{v}");
    // The test build has the default features.
    assert!(v.contains("gui") == cfg!(feature = "gui"), "{v}");
}

#[test]
fn a_photo_given_alone_opens_the_app_on_it_and_subcommands_still_parse() {
    let cli = Cli::try_parse_from(["layerinv", "/photos/canyon.jpg"]).unwrap();
    assert!(cli.command.is_none());
    assert_eq!(cli.photo.as_deref(), Some(Path::new("/photos/canyon.jpg")));
    let cli = Cli::try_parse_from(["layerinv", "info", "--json"]).unwrap();
    assert!(matches!(cli.command, Some(Command::Info { json: true, .. })));
    // A global option before the subcommand does not turn the subcommand into a photo.
    let cli = Cli::try_parse_from(["layerinv", "--threads", "2", "train", "--data", "photos"]).unwrap();
    assert!(matches!(cli.command, Some(Command::Train(_))) && cli.photo.is_none());
    let cli = Cli::try_parse_from(["layerinv", "--threads", "2", "canyon.jpg"]).unwrap();
    assert_eq!(cli.photo.as_deref(), Some(Path::new("canyon.jpg")));
    // A photo and --image name the same thing: one of them.
    assert!(Cli::try_parse_from(["layerinv", "a.jpg", "--image", "b.jpg"]).is_err());
}

#[test]
fn man_pages_and_completions_come_from_the_command_line_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let o = layerinv(&["man", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for page in ["layerinv.1", "layerinv-train.1", "layerinv-reconstruct.1", "layerinv-completions.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".TH "), "{page}");
    }
    let train = std::fs::read_to_string(dir.path().join("layerinv-train.1")).unwrap();
    assert!(train.contains("cache\\-limit"), "the train page lists its options");
    for (shell, needle) in
        [("bash", "complete -F _layerinv"), ("zsh", "#compdef layerinv"), ("fish", "complete -c layerinv")]
    {
        let o = layerinv(&["completions", shell]);
        assert!(o.status.success());
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains(needle), "{shell}: {}", &text[..text.len().min(200)]);
        assert!(text.contains("reconstruct"), "{shell} completes the subcommands");
    }
}
