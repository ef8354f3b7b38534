import Foundation
import Testing
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
@testable import SubspaceAnalysis

/// Models, adapters and dense references for the LoRA-X tests.
enum LoRAXFixture {
    static func config(_ family: ModelFamily, width: Int = 16, layers: Int = 2, kvHeads: Int? = nil, intermediate: Int? = nil) -> ModelConfig {
        ModelConfig(family: family, vocabularySize: 40, hiddenSize: width, layerCount: layers, headCount: 2,
                    keyValueHeadCount: kvHeads, intermediateSize: intermediate ?? (family == .gpt2 ? 4 * width : 24), maxPositions: 16)
    }

    /// Saves a model initialised from `seed`; `perturb` > 0 adds that much Gaussian noise to every weight
    /// (a "related" model: the same init, moved a little).
    static func model(_ config: ModelConfig, seed: UInt64, perturb: Float = 0, std: Float = 0.02, in scratch: Scratch, label: String) throws -> String {
        let m = Transformer(config: config)
        m.initialize(seed: seed, std: std)
        if perturb > 0 {
            var rng = RandomStream(seed: seed + 1000)
            for hf in HFNaming(config: config).tensors { for role in hf.parts {
                let t = m.tensor(role)
                m.setTensor(role, t + Tensor.normal(t.shape, std: perturb, using: &rng))
            } }
        }
        let folder = scratch.folder(label)
        try HFCheckpoint.save(m, to: folder)
        return folder
    }

    /// A PEFT adapter on `targets` with random A and B (B nonzero, unlike a fresh LoRA).
    static func adapter(_ config: ModelConfig, targets: [String], rank: Int = 2, alpha: Float = 4, seed: UInt64 = 7,
                        in scratch: Scratch) throws -> String {
        let lora = LoRAConfig(rank: rank, alpha: alpha, targets: .names(targets))
        let adapters = try LoRAAdapters(config: lora, model: config, seed: seed)
        var rng = RandomStream(seed: seed, stream: 99)
        for a in adapters.adapters {
            adapters.setFactor(a, b: true, Tensor.normal([a.module.outFeatures, rank], std: 0.1, using: &rng))
        }
        let folder = scratch.folder("adapter")
        try PEFTAdapter.save(adapters, model: config, to: folder)
        return folder
    }

    /// A module's [out, in] weight from an HF folder.
    static func weight(_ folder: String, _ config: ModelConfig, module: String) throws -> Tensor {
        let hf = HFNaming(config: config).tensors.first { $0.name == module + ".weight" }!
        let t = try TensorFolder(folder: folder).tensor(hf.name)
        return hf.transposed ? t.transposed() : t
    }

    /// scale·B·A of one module of an adapter folder, [out, in].
    static func update(_ folder: String, _ config: ModelConfig, module: String) throws -> Tensor {
        let adapters = try PEFTAdapter.load(folder: folder, for: config)
        let a = adapters.adapter(path: module)!
        return BLAS.matmul(adapters.factor(a, b: true), adapters.factor(a, b: false), alpha: adapters.config.scale)
    }

    /// Dense U_kU_kᵀ [m, m] and V_kV_kᵀ [n, n] of W's top-k singular vectors, in double-checked loops.
    static func projectors(_ w: Tensor, k: Int) throws -> (Tensor, Tensor) {
        let svd = try LAPACK.svd(w)
        let (m, n) = (w.shape[0], w.shape[1])
        let u = svd.u, vt = svd.vt
        let width = u.shape[1]
        var pu = [Float](repeating: 0, count: m * m), pv = [Float](repeating: 0, count: n * n)
        for i in 0..<m { for j in 0..<m { var s = 0.0; for c in 0..<k { s += Double(u[i, c]) * Double(u[j, c]) }; pu[i * m + j] = Float(s) } }
        for i in 0..<n { for j in 0..<n { var s = 0.0; for c in 0..<k { s += Double(vt[c, i]) * Double(vt[c, j]) }; pv[i * n + j] = Float(s) } }
        _ = width
        return (Tensor(shape: [m, m], values: pu), Tensor(shape: [n, n], values: pv))
    }

    /// Runs a transfer on `ranks` in-process ranks; rank 0's outcome.
    static func transfer(source: String, target: String, adapter: String, options: LoRAXOptions, ranks: Int = 1) throws -> LoRAXOutcome {
        let outcomes = try LocalCluster.run(size: ranks) { comm -> LoRAXOutcome? in
            let inputs = try LoRAXInputs(sourceModel: source, targetModel: target, adapter: adapter)
            return try LoRAXTransfer.run(inputs: inputs, options: options, communicator: comm)
        }
        #expect(outcomes.dropFirst().allSatisfy { $0 == nil })
        return try #require(outcomes[0])
    }

    /// The worst |a − b| / max(1, max|b|).
    static func worst(_ a: Tensor, _ b: Tensor) -> Double {
        precondition(a.shape == b.shape, "\(a.shape) vs \(b.shape)")
        let scale = max(1e-30, b.scalars.map { abs(Double($0)) }.max() ?? 0)
        return zip(a.scalars, b.scalars).map { abs(Double($0) - Double($1)) }.max()! / scale
    }
}

@Suite struct LoRAXSimilarityTests {
    static func random(_ m: Int, _ n: Int, seed: UInt64) -> Tensor {
        var rng = RandomStream(seed: seed)
        return Tensor.normal([m, n], using: &rng)
    }

    @Test func phiIsOneForIdenticalWeights() throws {
        var rng = RandomStream(seed: 1)
        let w = Self.random(96, 64, seed: 5)
        let b = try SingularBasis.top(w, k: 12, method: .full, rng: &rng)
        let e = CoordinateEmbedding.leading(96, 96)
        expectClose(SubspaceSimilarity.phi(source: b.u, target: b.u, embedding: e), 1, 1e-5, "φ_U")
        expectClose(SubspaceSimilarity.phi(source: b.v, target: b.v, embedding: .leading(64, 64)), 1, 1e-5, "φ_V")
    }

    /// Independent random subspaces: E[φ] = k/d, std ≈ √2/d.
    @Test(arguments: [(256, 32), (256, 128), (200, 10)])
    func phiOfRandomWeightsIsNearChance(d: Int, k: Int) throws {
        var rng = RandomStream(seed: 2)
        var phis: [Double] = []
        for trial in 0..<4 {
            let a = try SingularBasis.top(Self.random(d, d, seed: 10 + UInt64(trial)), k: k, method: .full, rng: &rng)
            let b = try SingularBasis.top(Self.random(d, d, seed: 50 + UInt64(trial)), k: k, method: .full, rng: &rng)
            phis.append(SubspaceSimilarity.phi(source: a.u, target: b.u, embedding: .leading(d, d)))
        }
        let mean = phis.reduce(0, +) / Double(phis.count)
        let chance = SubspaceSimilarity.chance(k: k, sourceDimension: d, targetDimension: d)
        #expect(abs(mean - chance) < 6 * 2.0.squareRoot() / Double(d) / 2, "mean φ \(mean) vs chance \(chance)")
    }

    @Test func randomizedBasisMatchesExactOnAClearGap() throws {
        let w = Fixture.prescribed([10, 9, 8, 7, 1, 0.5], m: 80, n: 60, seed: 3) + Self.random(80, 60, seed: 4).scaled(1e-3)
        var rng = RandomStream(seed: 9)
        let exact = try SingularBasis.top(w, k: 4, method: .full, rng: &rng)
        let fast = try SingularBasis.top(w, k: 4, method: .randomized, rng: &rng)
        expectClose(SubspaceSimilarity.phi(source: exact.u, target: fast.u, embedding: .leading(80, 80)), 1, 1e-4, "φ_U exact vs randomized")
    }

    @Test func truncateKeepsTheBestRankRApproximation() throws {
        var rng = RandomStream(seed: 11)
        let b = Tensor.normal([20, 6], using: &rng), a = Tensor.normal([6, 14], using: &rng)
        let t = try LoRAProjection.truncate(b: b, a: a, rank: 2)
        #expect(t.b.shape == [20, 2] && t.a.shape == [2, 14])
        let full = BLAS.matmul(b, a)
        let svd = try LAPACK.svd(full)
        #expect(LoRAXFixture.worst(BLAS.matmul(t.b, t.a), svd.reconstruct(rank: 2)) < 1e-4)
        let energy = svd.s.prefix(2).reduce(0.0) { $0 + Double($1 * $1) } / svd.s.reduce(0.0) { $0 + Double($1 * $1) }
        expectClose(t.energyKept, energy, 1e-4, "energy kept")
        expectClose(LoRAProjection.squaredNorm(b: b, a: a), full.sumOfSquares, 1e-4, "‖BA‖² from factors")
    }

    /// Different shapes: a target whose weight is the source's embedded in a larger space (plus smaller
    /// singular values in the new coordinates) and an update inside the source's top-k subspaces: the
    /// map gives target-shaped rank-r factors whose product is the embedded update.
    @Test func mappedProjectionRecoversAPlantedTransfer() throws {
        let (ms, ns, mt, nt, k, r) = (24, 16, 40, 28, 6, 2)
        let ws = Fixture.prescribed([9, 8, 7, 6, 5, 4, 1, 0.5], m: ms, n: ns, seed: 21)
        let outE = CoordinateEmbedding.leading(ms, mt), inE = CoordinateEmbedding.leading(ns, nt)
        var wt = inE.apply(outE.apply(ws).transposed()).transposed()          // E_out·W_s·E_inᵀ
        let extra = Fixture.prescribed([0.3, 0.2], m: mt - ms, n: nt - ns, seed: 22)
        wt.withUnsafeMutableBufferPointer { p in
            for i in 0..<(mt - ms) { for j in 0..<(nt - ns) { p[(ms + i) * nt + ns + j] = extra[i, j] } }
        }
        var rng = RandomStream(seed: 5)
        let sb = try SingularBasis.top(ws, k: k, method: .full, rng: &rng)
        let tb = try SingularBasis.top(wt, k: k, method: .full, rng: &rng)
        // ΔW_s = U_s·C·V_sᵀ with C of rank r: B_s = U_s·C₁ [ms, r], A_s = C₂·V_sᵀ [r, ns].
        let bs = BLAS.matmul(sb.u, Tensor.normal([k, r], using: &rng))
        let as_ = BLAS.matmul(Tensor.normal([r, k], using: &rng), sb.v, transB: .transposed)
        let (bt, at) = LoRAProjection.map(b: bs, a: as_, source: sb, target: tb, outEmbedding: outE, inEmbedding: inE)
        #expect(bt.shape == [mt, r] && at.shape == [r, nt])
        let planted = inE.apply(outE.apply(BLAS.matmul(bs, as_)).transposed()).transposed()
        #expect(LoRAXFixture.worst(BLAS.matmul(bt, at), planted) < 1e-4)
        expectClose(SubspaceSimilarity.phi(source: sb.u, target: tb.u, embedding: outE), 1, 1e-5, "φ_U of the planted pair")
        #expect(SubspaceSimilarity.chance(k: k, sourceDimension: ms, targetDimension: mt) == Double(k) / Double(mt))
    }
}

extension Tensor {
    func scaled(_ s: Float) -> Tensor { Tensor(shape: shape, values: scalars.map { $0 * s }) }
}

@Suite struct LoRAXMappingTests {
    @Test func gpt2FusedQKVFeedsLlamasThreeProjections() {
        let (s, t) = (LoRAXFixture.config(.gpt2), LoRAXFixture.config(.llama, kvHeads: 1))
        let adapted = ["transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj", "transformer.h.1.mlp.c_fc", "transformer.h.1.mlp.c_proj"]
        let (maps, unmapped) = ModuleMapper.map(source: s, target: t, adapted: adapted)
        #expect(maps.map(\.target) == ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
                                      "model.layers.0.self_attn.o_proj", "model.layers.1.mlp.up_proj", "model.layers.1.mlp.down_proj"])
        #expect(maps[1].sourceRoles == [RoleRows(role: "k", module: "transformer.h.0.attn.c_attn", rowStart: 16, rows: 16)])
        #expect(maps[2].sourceRoles.first??.rowStart == 32)
        #expect(!maps[1].shapesMatch && maps[1].targetShape == [8, 16])   // one kv head of 8: k is mapped, not projected
        #expect(maps[0].shapesMatch && maps[3].shapesMatch)
        #expect(unmapped.isEmpty)
    }

    @Test func llamaProjectionsFeedGPT2sFusedModuleAndGateIsReported() {
        let (s, t) = (LoRAXFixture.config(.llama), LoRAXFixture.config(.gpt2))
        let adapted = ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj", "model.layers.0.mlp.gate_proj"]
        let (maps, unmapped) = ModuleMapper.map(source: s, target: t, adapted: adapted)
        #expect(maps.map(\.target) == ["transformer.h.0.attn.c_attn"])
        #expect(maps[0].adapted == [true, false, true])
        #expect(maps[0].sourceModules == ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"])
        #expect(maps[0].sourceShape == [48, 16] && maps[0].shapesMatch)
        #expect(unmapped == [UnmappedModule(module: "model.layers.0.mlp.gate_proj", role: nil, reason: "the target (gpt2) has no gate projection")])
    }

    @Test func llamaToQwen2IsOneToOneAndMissingLayersAreReported() {
        let (s, t) = (LoRAXFixture.config(.llama, layers: 3), LoRAXFixture.config(.qwen2, layers: 2))
        let adapted = HFNaming(config: s).linearModules.map(\.path)
        let (maps, unmapped) = ModuleMapper.map(source: s, target: t, adapted: adapted)
        #expect(maps.map(\.target) == HFNaming(config: t).linearModules.map(\.path))
        #expect(maps.allSatisfy { $0.sourceModules == [$0.target] && $0.shapesMatch })
        #expect(unmapped.count == 7 && unmapped.allSatisfy { $0.module.hasPrefix("model.layers.2.") && $0.reason.contains("does not exist") })
    }
}

@Suite struct LoRAXTransferTests {
    /// Equal shapes: scale·B_t·A_t = U_tU_tᵀ(scale·B_s·A_s)V_tV_tᵀ with U_t, V_t from an independent SVD
    /// of the target weight; same r and alpha; rank ≤ r; np = 1 and 2 agree.
    @Test(arguments: [ModelFamily.llama, .gpt2])
    func equalShapesProjectOntoTheTargetSubspaces(family: ModelFamily) throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }
        let config = LoRAXFixture.config(family)
        let source = try LoRAXFixture.model(config, seed: 3, in: scratch, label: "source")
        let target = try LoRAXFixture.model(config, seed: 3, perturb: 0.005, in: scratch, label: "target")
        let targets = family == .gpt2 ? ["c_attn", "c_fc"] : ["q_proj", "v_proj", "down_proj"]
        let adapter = try LoRAXFixture.adapter(config, targets: targets, in: scratch)
        let k = 5
        let options = LoRAXOptions(subspaceRank: k, threshold: 0)
        let outcome = try LoRAXFixture.transfer(source: source, target: target, adapter: adapter, options: options)
        let out = scratch.folder("out")
        try LoRAXWriter.write(outcome, to: out)
        let written = try PEFTAdapter.readConfig(folder: out)
        let original = try PEFTAdapter.readConfig(folder: adapter)
        #expect(written.rank == original.rank && written.alpha == original.alpha && written.targets == original.targets)
        #expect(outcome.report.modules.allSatisfy { $0.transferred && $0.projection == "equal_shapes" && $0.k == k })

        for m in outcome.report.modules {
            let (pu, pv) = try LoRAXFixture.projectors(try LoRAXFixture.weight(target, config, module: m.name), k: k)
            let ds = try LoRAXFixture.update(adapter, config, module: m.name)
            let expected = BLAS.matmul(BLAS.matmul(pu, ds), pv)
            let actual = try LoRAXFixture.update(out, config, module: m.name)
            #expect(LoRAXFixture.worst(actual, expected) < 2e-4, "\(m.name)")
            let rank = try LAPACK.svd(actual).s.filter { $0 > 1e-5 * (actual.norm) }.count
            #expect(rank <= written.rank, "\(m.name): rank \(rank)")
            expectClose(m.normRatio, Double(actual.norm / ds.norm), 1e-3, "\(m.name) norm ratio")
        }

        let two = try LoRAXFixture.transfer(source: source, target: target, adapter: adapter, options: options, ranks: 2)
        #expect(two.report.modules.map { [$0.phiU, $0.phiV, $0.normRatio ?? -1] } == outcome.report.modules.map { [$0.phiU, $0.phiV, $0.normRatio ?? -1] })
        #expect(Set(two.report.modules.map(\.ownerRank)) == [0, 1])
        for (a, b) in zip(two.adapter.adapters, outcome.adapter.adapters) {
            #expect(two.adapter.factor(a, b: true) == outcome.adapter.factor(b, b: true))
            #expect(two.adapter.factor(a, b: false) == outcome.adapter.factor(b, b: false))
        }
    }

    @Test func identicalModelsGivePhiOneAndUnrelatedOnesNearChance() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }
        let config = LoRAXFixture.config(.llama, width: 64, layers: 1, intermediate: 128)
        let source = try LoRAXFixture.model(config, seed: 3, in: scratch, label: "source")
        let other = try LoRAXFixture.model(config, seed: 4, in: scratch, label: "other")
        let adapter = try LoRAXFixture.adapter(config, targets: ["q_proj", "o_proj"], in: scratch)
        let same = try LoRAXFixture.transfer(source: source, target: source, adapter: adapter, options: LoRAXOptions(subspaceRank: 8))
        for m in same.report.modules {
            expectClose(m.phiU, 1, 1e-4, "\(m.name) φ_U")
            expectClose(m.phiV, 1, 1e-4, "\(m.name) φ_V")
            #expect(m.transferred)
        }
        let unrelated = try LoRAXFixture.transfer(source: source, target: other, adapter: adapter, options: LoRAXOptions(subspaceRank: 8, threshold: 0))
        for m in unrelated.report.modules {
            #expect(m.chanceU == 8.0 / 64 && m.ratioU > 0.3 && m.ratioU < 2.5 && m.ratioV > 0.3 && m.ratioV < 2.5, "\(m.name): \(m.ratioU) \(m.ratioV)")
        }
        // Under the default threshold (halfway from chance to 1) nothing is transferred: an error.
        #expect(throws: AnalysisError.self) {
            _ = try LoRAXFixture.transfer(source: source, target: other, adapter: adapter, options: LoRAXOptions(subspaceRank: 8))
        }
    }

    /// A wider target grown from the source (its weights in the leading coordinates, zeros elsewhere):
    /// factors of the target's shapes, equal to the embedded, source-subspace part of the update.
    @Test func widerTargetGetsTargetShapedFactorsOfTheEmbeddedUpdate() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }
        let small = LoRAXFixture.config(.gpt2, width: 16, layers: 1)
        let wide = LoRAXFixture.config(.gpt2, width: 24, layers: 1)
        let source = try LoRAXFixture.model(small, seed: 3, std: 0.2, in: scratch, label: "source")
        let grown = Transformer(config: wide)
        let model = try HFCheckpoint.load(folder: source)
        for hf in HFNaming(config: small).tensors { for role in hf.parts {
            let t = model.tensor(role)
            var w = Tensor(zeros: grown.tensor(role).shape)
            let cols = t.rank == 2 ? t.shape[1] : 1, wideCols = w.rank == 2 ? w.shape[1] : 1
            w.withUnsafeMutableBufferPointer { p in for i in 0..<t.shape[0] { for j in 0..<cols { p[i * wideCols + j] = t[flat: i * cols + j] } } }
            grown.setTensor(role, w)
        } }
        let target = scratch.folder("grown")
        try HFCheckpoint.save(grown, to: target)
        let adapter = try LoRAXFixture.adapter(small, targets: ["c_attn", "mlp.c_proj"], in: scratch)
        let k = 6
        let outcome = try LoRAXFixture.transfer(source: source, target: target, adapter: adapter, options: LoRAXOptions(subspaceRank: k, threshold: 0.9))
        let out = scratch.folder("out")
        try LoRAXWriter.write(outcome, to: out)
        let loaded = try PEFTAdapter.load(folder: out, for: wide)   // target shapes, r kept
        #expect(loaded.config.rank == 2 && loaded.adapters.count == 2)
        for m in outcome.report.modules {
            #expect(m.projection == "mapped" && m.transferred, "\(m.name)")
            expectClose(m.phiU, 1, 1e-4, "\(m.name) φ_U")
            let inputs = try LoRAXInputs(sourceModel: source, targetModel: target, adapter: adapter)
            let mapping = inputs.mappings.first { $0.target == m.name }!
            let ws = try inputs.sourceWeight(mapping)
            let (pu, pv) = try LoRAXFixture.projectors(ws, k: k)
            let ds = try LoRAXFixture.update(adapter, small, module: m.name)
            let projected = BLAS.matmul(BLAS.matmul(pu, ds), pv)
            let outE = inputs.outEmbedding(mapping), inE = CoordinateEmbedding.leading(mapping.sourceShape[1], mapping.targetShape[1])
            let expected = inE.apply(outE.apply(projected).transposed()).transposed()
            let actual = try LoRAXFixture.update(out, wide, module: m.name)
            #expect(actual.shape == m.targetShape)
            #expect(LoRAXFixture.worst(actual, expected) < 1e-3, "\(m.name)")
        }
    }

    @Test func llamaAdapterOnGPT2KeepsRankR() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }
        let (s, t) = (LoRAXFixture.config(.llama, layers: 1), LoRAXFixture.config(.gpt2, layers: 1))
        let source = try LoRAXFixture.model(s, seed: 3, in: scratch, label: "source")
        let target = try LoRAXFixture.model(t, seed: 5, in: scratch, label: "target")
        let adapter = try LoRAXFixture.adapter(s, targets: ["q_proj", "k_proj", "v_proj", "gate_proj", "down_proj"], in: scratch)
        let outcome = try LoRAXFixture.transfer(source: source, target: target, adapter: adapter, options: LoRAXOptions(threshold: 0))
        let out = scratch.folder("out")
        let files = try LoRAXWriter.write(outcome, to: out)
        let loaded = try PEFTAdapter.load(folder: out, for: t)
        #expect(loaded.adapters.map(\.module.path) == ["transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_proj"])
        #expect(outcome.report.targetModules == ["attn.c_attn", "mlp.c_proj"])
        let cAttn = outcome.report.modules[0]
        #expect(cAttn.sources.count == 3 && cAttn.rankEnergyKept != nil && cAttn.rankEnergyKept! < 1)
        #expect(outcome.report.unmapped.map(\.module) == ["model.layers.0.mlp.gate_proj"])
        let json = try String(contentsOfFile: files.json, encoding: .utf8)
        for key in ["\"phi_u\"", "\"phi_v\"", "\"chance\"", "\"transferred\"", "\"norm_ratio\"", "\"unmapped\""] { #expect(json.contains(key), "\(key)") }
        for svg in outcome.report.modules.isEmpty ? [] : LoRAXWriter.plots(outcome.report) { #expect(xmlProblem(svg.xml) == nil) }
        let html = try String(contentsOfFile: files.html, encoding: .utf8)
        #expect(html.contains("<svg") && !html.contains("src=\"http"))
    }

    @Test func badInputsAreClearErrors() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }
        let llama = LoRAXFixture.config(.llama, layers: 1), gpt2 = LoRAXFixture.config(.gpt2, layers: 1)
        let source = try LoRAXFixture.model(llama, seed: 3, in: scratch, label: "source")
        let gptModel = try LoRAXFixture.model(gpt2, seed: 3, in: scratch, label: "gpt2")
        let adapter = try LoRAXFixture.adapter(llama, targets: ["q_proj"], in: scratch)
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        // An adapter for another family than the source model.
        let wrongFamily = message { _ = try LoRAXInputs(sourceModel: gptModel, targetModel: source, adapter: adapter) }
        #expect(wrongFamily.contains(adapter) && wrongFamily.contains("does not fit the source model"), "\(wrongFamily)")
        // Nothing mappable: a gate-only adapter onto GPT-2.
        let gate = try LoRAXFixture.adapter(llama, targets: ["gate_proj"], in: scratch)
        let nothing = message { _ = try LoRAXInputs(sourceModel: source, targetModel: gptModel, adapter: gate) }
        #expect(nothing.contains("none of its 1 modules maps") && nothing.contains("gate"), "\(nothing)")
        // A target folder missing a module's weight.
        let broken = scratch.folder("broken")
        let tensors = HFCheckpoint.hfTensors(of: try HFCheckpoint.load(folder: source)).filter { $0.name != "model.layers.0.self_attn.q_proj.weight" }
        try TensorFolder.write(tensors, to: broken)
        try FileManager.default.copyItem(atPath: source + "/config.json", toPath: broken + "/config.json")
        let missing = message { _ = try LoRAXInputs(sourceModel: source, targetModel: broken, adapter: adapter) }
        #expect(missing.contains("model.layers.0.self_attn.q_proj.weight") && missing.contains("missing"), "\(missing)")
        // Not a model folder.
        #expect(message { _ = try LoRAXInputs(sourceModel: source, targetModel: scratch.folder("empty"), adapter: adapter) }.contains("no config.json"))
        // Zero modules transferred.
        let other = try LoRAXFixture.model(llama, seed: 9, in: scratch, label: "other")
        let none = message { _ = try LoRAXFixture.transfer(source: source, target: other, adapter: adapter, options: LoRAXOptions(threshold: 0.99)) }
        #expect(none.contains("no module was transferred"), "\(none)")
        #expect(LoRAXOptions(subspaceRank: 0).problems().first?.contains("subspace rank") == true)
        #expect(LoRAXOptions(threshold: 1.5).problems().first?.contains("threshold") == true)
    }
}
