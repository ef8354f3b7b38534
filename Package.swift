// swift-tools-version:6.0
import PackageDescription

// Layers, lowest first: C system libraries → SubspaceCore → SubspaceDistributed → SubspaceModel →
// SubspaceTraining → SubspaceAnalysis → SubspaceStudies (one folder per study) → the `subspace` executable.
let package = Package(
    name: "Subspace",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "subspace", targets: ["subspace"]),
        .library(name: "SubspaceCore", targets: ["SubspaceCore"]),
        .library(name: "SubspaceDistributed", targets: ["SubspaceDistributed"]),
        .library(name: "SubspaceModel", targets: ["SubspaceModel"]),
        .library(name: "SubspaceTraining", targets: ["SubspaceTraining"]),
        .library(name: "SubspaceAnalysis", targets: ["SubspaceAnalysis"]),
        .library(name: "SubspaceStudies", targets: ["SubspaceStudies"]),
    ],
    dependencies: [
        // Command-line parsing for the `subspace` executable and its subcommands.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // YAML run configurations (configs/*.yaml).
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // System libraries found through pkg-config; each has a module map and a small shim header.
        .systemLibrary(
            name: "CMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(
            name: "CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CLAPACKE", pkgConfig: "lapacke",
            providers: [.apt(["liblapacke-dev"])]),
        // oneDNN, for bf16 products (Debian ships no pkg-config file for it; the module map links dnnl).
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),

        .target(name: "SubspaceCore", dependencies: ["CBLAS", "CLAPACKE", "CDNNL"]),
        // Collectives work on raw buffers, so this layer needs nothing from SubspaceCore.
        .target(name: "SubspaceDistributed", dependencies: ["CMPI"]),
        .target(name: "SubspaceModel", dependencies: ["SubspaceCore"]),
        .target(
            name: "SubspaceTraining",
            dependencies: ["SubspaceCore", "SubspaceDistributed", "SubspaceModel", .product(name: "Yams", package: "Yams")]),
        // ΔW analysis (SVD of fine-tuning updates) and run comparisons; used by the executable and the pipeline.
        .target(
            name: "SubspaceAnalysis",
            dependencies: ["SubspaceCore", "SubspaceDistributed", "SubspaceModel", "SubspaceTraining"]),
        // The research studies, one folder each (config, runner, statistics, report), composed from the
        // layers below; `Common/` holds what several studies share. Any study can be driven from code.
        .target(
            name: "SubspaceStudies",
            dependencies: ["SubspaceCore", "SubspaceDistributed", "SubspaceModel", "SubspaceTraining", "SubspaceAnalysis",
                           .product(name: "Yams", package: "Yams")]),
        // Checks shared by `swift test` (in-process ranks) and the multi-rank tests under mpirun.
        .target(name: "SubspaceTestSupport", dependencies: ["SubspaceDistributed"]),

        .executableTarget(
            name: "subspace",
            dependencies: [
                "SubspaceCore", "SubspaceDistributed", "SubspaceModel", "SubspaceTraining", "SubspaceAnalysis", "SubspaceStudies", "CBLAS", "CMPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ]),

        .testTarget(name: "SubspaceCoreTests", dependencies: ["SubspaceCore"]),
        .testTarget(name: "SubspaceModelTests", dependencies: ["SubspaceModel"], exclude: ["Resources"]),
        .testTarget(name: "SubspaceTrainingTests", dependencies: ["SubspaceTraining", "SubspaceModel", "SubspaceTestSupport"]),
        .testTarget(
            name: "SubspaceStudiesTests",
            dependencies: ["SubspaceStudies", "SubspaceTraining", "SubspaceAnalysis", "SubspaceModel", "SubspaceDistributed", "SubspaceTestSupport"]),
        .testTarget(
            name: "SubspaceAnalysisTests",
            dependencies: ["SubspaceAnalysis", "SubspaceCore", "SubspaceDistributed", "SubspaceModel"]),
        .testTarget(
            name: "SubspaceDistributedTests",
            dependencies: ["SubspaceDistributed", "SubspaceTestSupport"]),
        // Run under `mpirun -np N` by launch/test; prints "N passed, N failed" per rank.
        .executableTarget(
            name: "MPITests", dependencies: ["SubspaceDistributed", "SubspaceTestSupport"],
            path: "Tests/MPITests"),
    ]
)
