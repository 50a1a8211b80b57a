//! The machine a run computes on, as its provenance records it ([`Machine`]): the CPU, the
//! instruction sets the backend's kernels chose at start-up, and the numeric libraries'
//! versions. Some kernels pick their instruction set at run time (libtorch's, gemm's, burn-flex's
//! with the `simd` feature), so the same cell can round differently on two machines; this is
//! what tells them apart.

use std::collections::BTreeMap;

use crate::store::Machine;
use crate::train::Backend;

/// burn's version: Cargo.toml pins it (`=0.22.1`); a test holds the two equal.
pub const BURN_VERSION: &str = "0.22.1";

/// The machine of this process, as a run on `backend` uses it.
pub fn detect(backend: Backend) -> Machine {
    let mut libraries = BTreeMap::from([("burn".to_string(), BURN_VERSION.to_string())]);
    let kernels = match backend {
        Backend::Flex => flex_kernels(),
        Backend::Tch => libtorch_kernels(&mut libraries),
    };
    Machine {
        cpu: cpu_model(),
        cpu_simd: cpu_simd().to_string(),
        kernels,
        libraries,
        caches: caches(),
    }
}

/// The data and unified caches of CPU 0 (`/sys/devices/system/cpu/cpu0/cache`), e.g.
/// `L1d 48K, L2 1024K, L3 32768K`; empty where the system does not say.
pub fn caches() -> String {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let read = |index: &std::path::Path, name: &str| {
        std::fs::read_to_string(index.join(name)).map(|t| t.trim().to_string())
    };
    let mut caches: Vec<(String, String)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter_map(|index| {
            let (level, kind) = (read(&index, "level").ok()?, read(&index, "type").ok()?);
            let size = read(&index, "size").ok()?;
            let suffix = match kind.as_str() {
                "Data" => "d",
                "Unified" => "",
                _ => return None,
            };
            Some((format!("L{level}{suffix}"), size))
        })
        .collect();
    caches.sort();
    caches
        .iter()
        .map(|(name, size)| format!("{name} {size}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The CPU's model name (`/proc/cpuinfo`).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The widest vector extension the CPU reports: AVX-512, AVX2 or SSE on x86-64, the
/// architecture's name elsewhere.
pub fn cpu_simd() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            "AVX-512"
        } else if std::arch::is_x86_feature_detected!("avx2") {
            "AVX2"
        } else {
            "SSE"
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH
    }
}

/// burn-flex's element-wise operations and reductions in a build without the `simd` feature:
/// plain loops compiled for baseline x86-64, each sum in index order.
const FLEX_SCALAR: &str = "baseline x86-64, sums in index order";

/// What flex's kernel families run on this CPU: gemm's matrix products (AVX2 + FMA kernels at
/// most: its AVX-512 ones are not built), burn-flex's element-wise operations and reductions
/// ([`FLEX_SCALAR`], or with the `simd` feature macerator's widest level: AVX-512 where the
/// CPU has F, BW, CD, DQ and VL), and agml's own kernels (compiled for baseline x86-64, their
/// sums in a fixed order; the convolutions' and the evaluation's products run on AVX-512 where
/// the CPU has it, and round exactly as gemm's AVX2 + FMA kernels: `products::avx512`).
fn flex_kernels() -> BTreeMap<String, String> {
    #[cfg(target_arch = "x86_64")]
    let (gemm, elementwise) = {
        use std::arch::is_x86_feature_detected as has;
        let v3 = has!("avx2") && has!("fma") && has!("f16c") && has!("bmi2") && has!("lzcnt");
        let v4 = v3
            && has!("avx512f")
            && has!("avx512bw")
            && has!("avx512cd")
            && has!("avx512dq")
            && has!("avx512vl");
        let gemm = if has!("avx2") && has!("fma") {
            "AVX2+FMA"
        } else {
            "scalar"
        };
        let elementwise = if v4 {
            "AVX-512"
        } else if v3 {
            "AVX2"
        } else if has!("sse4.2") {
            "SSE4.2"
        } else {
            "SSE2"
        };
        (gemm, elementwise)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (gemm, elementwise) = (std::env::consts::ARCH, std::env::consts::ARCH);
    let elementwise = if cfg!(feature = "simd") {
        elementwise
    } else {
        FLEX_SCALAR
    };
    BTreeMap::from([
        ("gemm".to_string(), gemm.to_string()),
        (
            "burn-flex element-wise".to_string(),
            elementwise.to_string(),
        ),
        (
            "agml".to_string(),
            "baseline x86-64, fixed sum order".to_string(),
        ),
    ])
}

/// libtorch's CPU kernel level (ATen's `get_cpu_capability`: AVX512, AVX2 or DEFAULT, which
/// `ATEN_CPU_CAPABILITY` can lower) and its version.
#[cfg(feature = "tch")]
fn libtorch_kernels(libraries: &mut BTreeMap<String, String>) -> BTreeMap<String, String> {
    let (version, capability) = crate::model::ops::libtorch_build();
    libraries.insert("libtorch".into(), version);
    BTreeMap::from([("libtorch".to_string(), capability)])
}

#[cfg(not(feature = "tch"))]
fn libtorch_kernels(_libraries: &mut BTreeMap<String, String>) -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_version_is_the_one_cargo_toml_pins() {
        let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .expect("Cargo.toml");
        let pin = format!("burn = {{ version = \"={BURN_VERSION}\"");
        assert!(
            manifest.contains(&pin),
            "Cargo.toml no longer pins burn {BURN_VERSION}"
        );
    }

    #[test]
    fn flex_names_every_kernel_family() {
        let machine = detect(Backend::Flex);
        assert_eq!(machine.libraries["burn"], BURN_VERSION);
        for family in ["gemm", "burn-flex element-wise", "agml"] {
            assert!(!machine.kernels[family].is_empty(), "{family}");
        }
        assert!(!machine.cpu.is_empty() && !machine.cpu_simd.is_empty());
    }
}
