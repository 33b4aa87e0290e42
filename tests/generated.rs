//! The manual pages and shell completions in `man/` and `completions/` are generated from
//! the same clap definitions as `--help`, so they cannot drift: this test renders them and
//! fails when a committed copy differs. `UPDATE_GENERATED=1 cargo test --test tests
//! generated` writes them anew.

use std::fs;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use munin_async::asyncd::cli::AsyncdOpts;
use munin_async::serve::cli::AsyncOpts;
use munin_async::util::exit::Exit;

/// The page clap renders from the options, then FILES, EXIT STATUS, EXAMPLES and SEE ALSO
/// from `packaging/man/NAME.8.tail` (checked against the options below).
fn man(cmd: clap::Command, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .section("8")
        .manual("munin-async in Rust")
        .render(&mut out)
        .unwrap();
    out.extend(tail(name).into_bytes());
    out
}

fn tail(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("packaging/man/{name}.8.tail"));
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn completion(shell: Shell, mut cmd: clap::Command, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// Every generated file, by its path in the repository.
fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for (name, cmd) in [
        ("munin-async", AsyncOpts::command()),
        ("munin-asyncd", AsyncdOpts::command()),
    ] {
        files.push((
            PathBuf::from(format!("man/{name}.8")),
            man(cmd.clone(), name),
        ));
        for (shell, file) in [
            (Shell::Bash, format!("completions/{name}.bash")),
            (Shell::Zsh, format!("completions/_{name}")),
            (Shell::Fish, format!("completions/{name}.fish")),
        ] {
            files.push((PathBuf::from(file), completion(shell, cmd.clone(), name)));
        }
    }
    files
}

#[test]
fn manual_pages_and_completions_are_generated_from_the_options() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    for (path, bytes) in generated() {
        let full = root.join(&path);
        if update {
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(&full, &bytes).unwrap();
        } else if fs::read(&full).ok().as_deref() != Some(&bytes[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {} (run UPDATE_GENERATED=1 cargo test --test tests generated)",
        stale.join(", ")
    );
    // The configuration file's page, as written.
    let conf = root.join("packaging/man/munin-asyncd.conf.5");
    if update {
        fs::copy(&conf, root.join("man/munin-asyncd.conf.5")).unwrap();
    } else {
        assert_eq!(
            fs::read(root.join("man/munin-asyncd.conf.5")).ok(),
            fs::read(&conf).ok(),
            "man/munin-asyncd.conf.5 is out of date"
        );
    }
    // The pages hold every long option --help shows.
    for (name, cmd, page) in [
        ("munin-async", AsyncOpts::command(), "man/munin-async.8"),
        ("munin-asyncd", AsyncdOpts::command(), "man/munin-asyncd.8"),
    ] {
        let text = fs::read_to_string(root.join(page)).unwrap();
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(
                    text.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                    "{name}: --{long} is not in {page}"
                );
            }
        }
        // What the added sections say cannot drift from the options: every option they
        // name exists, and EXIT STATUS lists the codes the programs use.
        let longs: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect();
        let added = tail(name);
        for word in added.split(|c: char| !(c.is_ascii_alphanumeric() || c == '\\' || c == '-')) {
            if let Some(opt) = word.strip_prefix("\\-\\-") {
                let opt = opt.replace("\\-", "-");
                assert!(
                    longs.contains(&opt),
                    "{page} names --{opt}, which {name} lacks"
                );
            }
        }
        for section in ["FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO"] {
            assert!(
                added.contains(&format!(".SH {section}\n")),
                "{page}: no {section}"
            );
        }
        let exit = &added[added.find(".SH EXIT STATUS").unwrap()..];
        for code in [Exit::Ok, Exit::Failure, Exit::Usage].map(Exit::code) {
            assert!(
                exit.contains(&format!(".TP\n{code}\n")),
                "{page}: exit status {code}"
            );
        }
    }
}

/// README.Debian and NEWS.Debian name only options the programs have (the package ships
/// them beside the manual pages; they must not drift either).
#[test]
fn the_debian_docs_name_only_options_the_programs_have() {
    let longs: Vec<String> = [AsyncOpts::command(), AsyncdOpts::command()]
        .iter()
        .flat_map(|cmd| {
            cmd.get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut named = 0;
    for doc in [
        "packaging/debian/munin-async-rs.README.Debian",
        "packaging/debian/munin-async-rs.NEWS",
    ] {
        let text = fs::read_to_string(root.join(doc)).unwrap();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            if let Some(opt) = word
                .strip_prefix("--")
                .filter(|o| o.starts_with(|c: char| c.is_ascii_alphanumeric()))
            {
                assert!(
                    longs.iter().any(|l| l == opt),
                    "{doc} names --{opt}, which neither program has"
                );
                named += 1;
            }
        }
    }
    assert!(
        named >= 5,
        "only {named} options named: is the check still reading the docs?"
    );
}
