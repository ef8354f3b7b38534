import Foundation
import Testing
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
import SubspaceTraining
import SubspaceAnalysis
@testable import SubspaceStudies
import SubspaceTestSupport

/// LoRA-Null end to end on a tiny llama over the byte corpus: build (each variant), step-0 outputs equal
/// the base's, the closed-form identity, verify's figures against a direct computation, bad input named,
/// training with the variant's frozen factor proven frozen (and the check failing when it is not).
@Suite(.serialized) struct LoRANullTests {
    static let config = ModelConfig(family: .llama, vocabularySize: 256, hiddenSize: 32, layerCount: 2, headCount: 4,
                                    keyValueHeadCount: 2, intermediateSize: 48, maxPositions: 32)

    /// An HF folder of a randomly initialised tiny llama (built once).
    static let base: String = {
        let folder = try! TestFiles.temporaryFolder("lora-null-base")
        let model = Transformer(config: config)
        model.initialize(seed: 21, std: 0.1)
        try! HFCheckpoint.save(model, to: folder)
        return folder
    }()

    static func build(_ variant: LoRANullVariant, rank: Int = 4, covariance: CovarianceEstimator = .scaled,
                      targets: [String]? = nil, calibration: String? = nil, ranks: Int = 1,
                      edit: (inout LoRANullBuild.Options) -> Void = { _ in }) throws -> String {
        let output = try TestFiles.temporaryFolder("lora-null-\(variant.rawValue)")
        var o = LoRANullBuild.Options(model: base, calibration: calibration ?? StudyTestSupport.corpus, rank: rank, variant: variant, output: output)
        o.calibrationOptions = CalibrationSet.Options(sequenceLength: 32, maxSequences: 12)
        o.covariance = covariance
        o.targets = targets
        o.batch = 4
        edit(&o)
        let options = o
        try LocalCluster.run(size: ranks) { comm in _ = try LoRANullBuild.run(options, communicator: comm) }
        return output
    }

    static func logits(adapter: String?, ids: [Int32], B: Int, T: Int) throws -> [Float] {
        let model = try HFCheckpoint.load(folder: base)
        if let adapter { model.adapters = try PEFTAdapter.load(folder: adapter, for: model.config) }
        model.forward(ids: ids, B: B, T: T)
        return model.logits.scalars
    }

    static let ids: [Int32] = (0..<64).map { Int32(($0 * 37 + 11) % 256) }

    @Test(arguments: LoRANullVariant.allCases)
    func stepZeroOutputsEqualTheBase(_ variant: LoRANullVariant) throws {
        let folder = try Self.build(variant)
        let manifest = try #require(try LoRANullManifest.read(folder: folder))
        #expect(manifest.variant == variant && manifest.rank == 4 && manifest.modules.count == 14)
        #expect(manifest.frozen == (variant == .v1 ? [] : [.down]))
        let peft = try PEFTAdapter.readConfig(folder: folder)
        #expect(peft.rank == (variant == .null ? 4 : 8))
        let base = try Self.logits(adapter: nil, ids: Self.ids, B: 2, T: 32)
        let adapted = try Self.logits(adapter: folder, ids: Self.ids, B: 2, T: 32)
        let worst = zip(base, adapted).map { abs($0 - $1) }.max()!
        if variant == .null {
            #expect(worst == 0, "null: the adapter's up-projection is zero, so the output is the base's exactly")
        } else {
            #expect(worst < 1e-5, "\(variant): logits differ by \(worst)")
        }
        // Merged in double precision, base + adapter is W bit for bit.
        let model = try HFCheckpoint.load(folder: Self.base), reference = try HFCheckpoint.load(folder: Self.base)
        try PEFTAdapter.load(folder: folder, for: model.config).merge(into: model)
        for e in model.layout.entries {
            #expect(model.tensor(e.role).scalars == reference.tensor(e.role).scalars, "\(variant): \(e.name) changed by the merge")
        }
        // Eigenvalues ascending, the closed form their share.
        for m in manifest.modules {
            #expect(m.eigenvalues == m.eigenvalues.sorted())
            #expect(abs(m.closedFormRatio - (m.eigenvalues.reduce(0, +) / m.trace).squareRoot()) < 1e-12)
        }
    }

    @Test func v1FactorsReproduceTheNullSpaceProjectionOfW() throws {
        let folder = try Self.build(.v1)
        let f = try LoRANull.Folder(folder: folder, model: Self.config)
        let model = try HFCheckpoint.load(folder: Self.base)
        let null = try LoRANull.Folder(folder: try Self.build(.null), model: Self.config)
        for (a, n) in zip(f.loaded.adapters, null.loaded.adapters) {
            let p = f.parts(a), u = null.parts(n).down                  // U_minᵀ [r, in]
            let w = LoRAInitialisation.moduleWeight(model, a.module)
            let t = BLAS.matmul(BLAS.matmul(w, u, transB: .transposed), u) // W·U·Uᵀ
            var st = BLAS.matmul(p.up, p.down)
            st.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] *= f.scale } }
            let worst = zip(t.scalars, st.scalars).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-4 * max(1, t.scalars.map(abs).max()!), "\(a.module.path): s·B·A differs from W·U·Uᵀ by \(worst)")
            #expect(p.initial != nil)
        }
    }

    @Test func closedFormIdentityAndVerifyFiguresAgainstDirectComputation() throws {
        // Calibrate and verify on the same sequences with the plain estimator: ‖BX‖/‖X‖ = √(Σλ_min/Σλ).
        let folder = try Self.build(.null, covariance: .plain)
        let manifest = try #require(try LoRANullManifest.read(folder: folder))
        let data = try CalibrationSet.load(StudyTestSupport.corpus, options: CalibrationSet.Options(sequenceLength: 32, maxSequences: 12), model: Self.config)
        let norms = try LocalCluster.run(size: 1) { comm in
            try LoRANullVerify.measure(model: Self.base, adapter: folder, data: data, batch: 4, communicator: comm).norms
        }[0]
        for (m, n) in zip(manifest.modules, norms) {
            #expect(m.name == n.name)
            #expect(abs(n.downXRatio - m.closedFormRatio) <= 1e-4 * m.closedFormRatio + 1e-7, "\(m.name): ‖BX‖/‖X‖ \(n.downXRatio) vs closed form \(m.closedFormRatio)")
            #expect(n.adapterXRatio == 0 && n.adapterOutputShare == 0)
        }
        // v2 after its build: direct computation from captured activations.
        let v2 = try Self.build(.v2)
        let measured = try LocalCluster.run(size: 1) { comm in
            try LoRANullVerify.measure(model: Self.base, adapter: v2, data: data, batch: 4, communicator: comm).norms
        }[0]
        let model = try HFCheckpoint.load(folder: Self.base)
        let f = try LoRANull.Folder(folder: v2, model: Self.config)
        model.adapters = f.loaded
        let recorder = Recorder()
        model.linearInputObserver = recorder
        data.forEachBatch(0..<data.count, batch: 5) { ids, B in model.forward(ids: ids, B: B, T: data.sequenceLength) }
        let original = try HFCheckpoint.load(folder: Self.base)
        for (a, got) in zip(f.loaded.adapters, measured) {
            let p = f.parts(a), (out, inp, r) = (a.module.outFeatures, a.module.inFeatures, 4)
            let w = LoRAInitialisation.moduleWeight(original, a.module).scalars.map(Double.init)
            let s = Double(f.scale)
            var wres = w
            for i in 0..<out { for j in 0..<inp { for k in 0..<r { wres[i * inp + j] -= s * Double(p.initial!.up.scalars[i * r + k]) * Double(p.initial!.down.scalars[k * inp + j]) } } }
            var sx = 0.0, sb = 0.0, sa = 0.0, sr = 0.0, sy = 0.0, n = 0
            for x in recorder.rows[InputSite(a.module)]! {
                n += 1
                let bx = (0..<r).map { k in (0..<inp).reduce(0.0) { $0 + Double(p.down.scalars[k * inp + $1]) * x[$1] } }
                let abx = (0..<out).map { i in s * (0..<r).reduce(0.0) { $0 + Double(p.up.scalars[i * r + $1]) * bx[$1] } }
                let rx = (0..<out).map { i in (0..<inp).reduce(0.0) { $0 + wres[i * inp + $1] * x[$1] } }
                sx += x.reduce(0) { $0 + $1 * $1 }
                sb += bx.reduce(0) { $0 + $1 * $1 }
                sa += abx.reduce(0) { $0 + $1 * $1 }
                sr += rx.reduce(0) { $0 + $1 * $1 }
                sy += zip(rx, abx).reduce(0) { $0 + ($1.0 + $1.1) * ($1.0 + $1.1) }
            }
            func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-4 * abs(b) + 1e-9 }
            let N = Double(n)
            #expect(got.tokens == n)
            #expect(close(got.xNorm, (sx / N).squareRoot()) && close(got.downXNorm, (sb / N).squareRoot()), "\(a.module.path)")
            #expect(close(got.adapterXNorm, (sa / N).squareRoot()) && close(got.residualXNorm, (sr / N).squareRoot()), "\(a.module.path)")
            #expect(close(got.outputNorm, (sy / N).squareRoot()), "\(a.module.path)")
            #expect(close(got.residualNorm, wres.reduce(0) { $0 + $1 * $1 }.squareRoot()))
            #expect(close(got.downNorm, p.down.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()))
        }
    }

    /// Every input row, per site.
    final class Recorder: LinearInputObserver {
        var rows: [InputSite: [[Double]]] = [:]
        func observe(layer: Int, group: LinearGroup, rows p: UnsafePointer<Float>, stride: Int, width: Int, batch: Int, sequence: Int) {
            for n in 0..<(batch * sequence) {
                rows[InputSite(layer: layer, group: group, width: width), default: []].append((0..<width).map { Double(p[n * stride + $0]) })
            }
        }
    }

    @Test func buildIsTheSameOnOneTwoAndThreeRanks() throws {
        let one = try LoRANullManifest.read(folder: try Self.build(.v2, ranks: 1))!
        for ranks in [2, 3] {
            let other = try LoRANullManifest.read(folder: try Self.build(.v2, ranks: ranks))!
            #expect(other.worldSize == ranks && other.calibrationTokens == one.calibrationTokens)
            for (a, b) in zip(one.modules, other.modules) {
                // Float noise only: ranks run other batch shapes, so the float32 forward rounds differently.
                #expect(zip(a.eigenvalues, b.eigenvalues).allSatisfy { abs($0 - $1) <= 1e-6 * a.trace }, "np=\(ranks): \(a.name)")
                #expect(abs(a.trace - b.trace) <= 1e-6 * a.trace)
            }
        }
    }

    @Test func badInputIsNamed() throws {
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        let unknown = message { _ = try Self.build(.null, targets: ["q_proj", "qq_proj"]) }
        #expect(unknown.contains("qq_proj"), "\(unknown)")
        let wide = message { _ = try Self.build(.null, rank: 32) }
        #expect(wide.contains("--rank 32") && wide.contains("input width 32"), "\(wide)")
        // input_ids longer than the model's 32 positions.
        let long = try TestFiles.temporaryFolder("lora-null-long") + "/ids.safetensors"
        var writer = SafetensorsWriter()
        writer.add("input_ids", integers: [Int64](repeating: 3, count: 80), shape: [2, 40])
        try writer.write(to: long)
        let tooLong = message { _ = try Self.build(.null, calibration: long) }
        #expect(tooLong.contains(long) && tooLong.contains("longer than the model's context"), "\(tooLong)")
        let text = message { _ = try Self.build(.null, calibration: TestFiles.longText) { $0.calibrationOptions.tokenizer = nil } }
        #expect(text.contains("--tokenizer"), "\(text)")
    }

    static func trainConfig(adapter: String, output: String, variant: LoRANullVariant) -> TrainConfig {
        var c = StudyTestSupport.trainConfig(output: output, steps: 3)
        c.model.source = .hf
        c.model.path = base
        c.model.family = .llama
        c.lora = TrainConfig.LoRA()
        c.lora!.rank = 4
        c.lora!.alpha = 4
        c.lora!.targets = LoRANullBuild.allTargets(config)
        c.lora!.initialisation = .loraNull
        c.lora!.adapter = adapter
        return c
    }

    @Test(arguments: [LoRANullVariant.null, .v2])
    func frozenFactorStaysFrozenAndTheCheckCatchesAnUnfrozenOne(_ variant: LoRANullVariant) throws {
        let folder = try Self.build(variant)
        let output = try TestFiles.temporaryFolder("lora-null-train")
        let config = Self.trainConfig(adapter: folder, output: output, variant: variant)
        let check = try FreezeCheck.run(config: config)
        #expect(check.passed, "\(check.summary)")
        let frozen = check.outcomes.filter { $0.intendedFrozen && $0.name.contains("lora_") }
        #expect(frozen.count == 14 && frozen.allSatisfy { $0.name.hasSuffix("lora_A.weight") && $0.changedElements == 0 })
        let broken = try FreezeCheck.run(config: config, simulateUnfrozen: ["lora_A"])
        #expect(!broken.passed)
        #expect(broken.failures.allSatisfy { $0.name.hasSuffix("lora_A.weight") } && broken.failures.count == 14, "\(broken.summary)")

        // A few real steps, exported; verify against the build: the frozen factor is bit-identical.
        try LocalCluster.run(size: 2) { comm in
            let trainer = try Trainer(config: config, communicator: comm)
            try trainer.run()
            try trainer.exportFinal(to: output + "/final")
        }
        #expect(try LoRANullManifest.read(folder: output + "/final")?.variant == variant)
        var o = LoRANullVerify.Options(model: Self.base, adapter: output + "/final", calibration: StudyTestSupport.corpus, output: output + "/verify")
        o.initial = folder
        o.calibrationOptions = CalibrationSet.Options(sequenceLength: 32, maxSequences: 6, split: .validation)
        let options = o
        let report = try LocalCluster.run(size: 1) { comm in try LoRANullVerify.run(options, communicator: comm) }[0]
        #expect(report.frozenIntact == true, "\(report.findings)")
        #expect(report.summary.upNorm != report.initialSummary!.upNorm)
        for (i, t) in zip(report.initialModules!, report.modules) {
            #expect(abs(i.downXRatio - t.downXRatio) < 0.05 * i.downXRatio + 1e-9, "\(t.name): frozen B, ‖BX‖/‖X‖ moves only with the inputs")
        }
        for file in ["verification.json", "report.md", "report.html"] {
            #expect(FileManager.default.fileExists(atPath: output + "/verify/" + file))
        }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output + "/verify/verification.json"))) as! [String: Any]
        let first = (json["modules"] as! [[String: Any]])[0]
        for key in ["name", "x_norm", "down_x_ratio", "adapter_x_ratio", "adapter_output_share", "down_norm", "up_norm", "residual_norm"] {
            #expect(first[key] != nil, "verification.json modules[] lacks \(key)")
        }
        #expect(json["summary"] is [String: Any])
    }
}
