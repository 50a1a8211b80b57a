//! Compiles agml's C/C++ shims:
//! - src/data/libjpeg.c against the system libjpeg: JPEGs are decoded by libjpeg-turbo, as PIL
//!   does. Needs its headers (Debian: `apt-get install libjpeg62-turbo-dev`; `make build`
//!   installs them when run as root).
//! - with the `tch` feature, src/model/ops/tch/shim.cpp against the libtorch that torch-sys
//!   found (its headers beside its lib folder): the backward passes tch does not bind.

fn main() {
    libjpeg();
    if std::env::var_os("CARGO_FEATURE_TCH").is_some() {
        libtorch_shim();
    }
}

fn libjpeg() {
    println!("cargo:rerun-if-changed=src/data/libjpeg.c");
    let built = cc::Build::new()
        .file("src/data/libjpeg.c")
        .warnings(true)
        .try_compile("agml_libjpeg");
    if let Err(error) = built {
        panic!(
            "cannot compile src/data/libjpeg.c against the system libjpeg ({error}): install \
             libjpeg-turbo's headers (Debian/Ubuntu: sudo apt-get install libjpeg62-turbo-dev; \
             Fedora: libjpeg-turbo-devel) or run `make build` as root"
        );
    }
    println!("cargo:rustc-link-lib=jpeg");
}

fn libtorch_shim() {
    const SHIM: &str = "src/model/ops/tch/shim.cpp";
    println!("cargo:rerun-if-changed={SHIM}");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    // torch-sys's `links = "tch"` metadata: the lib folder of the libtorch it linked.
    let lib = std::path::PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys names its libtorch lib folder"),
    );
    let root = lib.parent().expect("libtorch's lib folder has a parent");
    // PyTorch's wheels use the C++11 ABI (the only one since 2.7), as torch-sys assumes.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .file(SHIM)
        // -isystem: libtorch's headers' own warnings are not agml's.
        .flag(format!("-isystem{}", root.join("include").display()))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(true)
        .compile("agml_libtorch_shim");
}
