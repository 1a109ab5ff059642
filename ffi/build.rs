// Shapes the shared object: SONAME with the major version, and only evl_* symbols exported.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libevloop.so.{major}");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/evloop.map");
    println!("cargo:rerun-if-changed=evloop.map");
}
