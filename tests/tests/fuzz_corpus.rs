//! The fuzz targets' checks over their committed corpora (`fuzz/corpus/`), so
//! every property keeps compiling and holding without a nightly toolchain.
//! Fuzzing itself: `cd fuzz && cargo +nightly fuzz run <target>`.

use std::path::Path;

/// A fuzz target's property over one input.
type Check = fn(&[u8]);

#[test]
fn every_fuzz_check_holds_on_its_corpus() -> anyhow::Result<()> {
    let targets: [(&str, Check); 7] = [
        ("config", https_step_fuzz_checks::config),
        ("template_url", https_step_fuzz_checks::template_url),
        ("query", https_step_fuzz_checks::query),
        ("headers", https_step_fuzz_checks::headers),
        ("retry_after", https_step_fuzz_checks::retry_after),
        ("signing", https_step_fuzz_checks::signing),
        ("schema", https_step_fuzz_checks::schema),
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (name, check) in targets {
        let mut n = 0;
        for entry in std::fs::read_dir(root.join(name))? {
            let path = entry?.path();
            check(&std::fs::read(&path)?);
            n += 1;
        }
        assert!(n > 0, "the {name} corpus is empty");
    }
    Ok(())
}
