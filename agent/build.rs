//! Embeds the committed classifier (`models/`) into the agent binary when its files exist, so
//! the agent runs the model with no files installed beside it. Without them (a checkout
//! before `models/train.sh` first ran) the agent builds without a built-in model.
use std::path::Path;

const FILES: [&str; 3] = [
    "manifest.json",
    "edgewatch-classifier.onnx",
    "edgewatch-classifier.int8.onnx",
];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(builtin_model)");
    // The manifest directory of this build, read when the script runs: `env!` would bake in
    // the directory the script was compiled in, and cargo reuses a compiled build script for
    // another checkout of the same sources sharing the target directory.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let models = Path::new(&manifest_dir).join("../models");
    for f in FILES {
        println!("cargo::rerun-if-changed={}", models.join(f).display());
    }
    if FILES.iter().all(|f| models.join(f).is_file()) {
        println!("cargo::rustc-cfg=builtin_model");
    }
}
