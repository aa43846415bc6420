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
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    for f in FILES {
        println!("cargo::rerun-if-changed={}", models.join(f).display());
    }
    if FILES.iter().all(|f| models.join(f).is_file()) {
        println!("cargo::rustc-cfg=builtin_model");
    }
}
