//! The committed include/evloop.h must be what cbindgen generates from this crate now.
//! `EVLOOP_BLESS=1 cargo test -p evloop-ffi --test header` rewrites it.

#[test]
fn committed_header_matches_a_fresh_generation() {
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut fresh);
    let path = format!("{crate_dir}/../include/evloop.h");
    if std::env::var_os("EVLOOP_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/evloop.h");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/evloop.h is stale: run EVLOOP_BLESS=1 cargo test -p evloop-ffi --test header"
    );
}
