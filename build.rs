//! Compiles agml's libjpeg shim (src/data/libjpeg.c) and links the system libjpeg: JPEGs are
//! decoded by libjpeg-turbo, as PIL does. Needs its headers (Debian: `apt-get install
//! libjpeg62-turbo-dev`; `make build` installs them when run as root).

fn main() {
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
