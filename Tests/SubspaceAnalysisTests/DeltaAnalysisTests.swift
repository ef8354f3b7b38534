import Foundation
import Testing
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
@testable import SubspaceAnalysis

/// The figures of a spectrum, computed directly in double precision.
struct ExpectedFigures {
    var energy: Double
    var error: Double
    var ranks: [String: Int]
    var effectiveRank: Double

    init(_ s: [Float], rank R: Int) {
        let e = s.map { Double($0) * Double($0) }
        let total = e.reduce(0, +)
        energy = e.prefix(R).reduce(0, +) / total
        error = (1 - energy).squareRoot()
        var ranks: [String: Int] = [:]
        for f in [0.5, 0.9, 0.99] {
            var running = 0.0
            for (i, x) in e.enumerated() {
                running += x
                if running / total >= f { ranks[String(f)] = i + 1; break }
            }
        }
        self.ranks = ranks
        effectiveRank = exp(-e.map { $0 / total }.reduce(0) { $0 + $1 * log($1) })
    }
}

@Suite struct DeltaAnalysisTests {
    static func analyse(_ folders: Fixture.Folders, options: DeltaAnalysisOptions, ranks: Int = 1) throws -> DeltaAnalysisOutcome {
        let outcomes = try LocalCluster.run(size: ranks) { comm -> DeltaAnalysisOutcome? in
            let source = try HFFolderDeltaSource(base: folders.base, tuned: folders.tuned)
            return try DeltaAnalyzer.run(source: source, options: options, communicator: comm)
        }
        #expect(outcomes.dropFirst().allSatisfy { $0 == nil }, "only rank 0 returns the outcome")
        return try #require(outcomes[0])
    }

    @Test(arguments: [Fixture.llama, Fixture.gpt2])
    func figuresOfAKnownSpectrumAreExact(config: ModelConfig) throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }  // the folders live until the test ends
        let folders = try Fixture.folders(in: scratch, config)
        let R = 2
        let outcome = try Self.analyse(folders, options: DeltaAnalysisOptions(rank: R))
        let a = outcome.analysis
        let expected = ExpectedFigures(Fixture.sigma, rank: R)
        #expect(a.layers.count == HFNaming(config: config).linearModules.count)
        #expect(a.rank == R && a.method == .full)
        for layer in a.layers {
            let delta = try #require(folders.deltas[layer.module])
            #expect(layer.name == layer.module + ".weight")
            #expect(layer.shape == delta.shape)
            #expect(layer.singularValues.count == min(delta.shape[0], delta.shape[1]))
            for (i, s) in Fixture.sigma.enumerated() { expectClose(Double(layer.singularValues[i]), Double(s), 1e-5, "\(layer.name) σ\(i + 1)") }
            for s in layer.singularValues.dropFirst(Fixture.sigma.count) { #expect(abs(s) < 1e-5, "\(layer.name): trailing σ \(s)") }
            expectClose(layer.energyAtRank, expected.energy, 1e-5, "\(layer.name) energy")
            expectClose(layer.relativeErrorAtRank, expected.error, 1e-5, "\(layer.name) error")
            expectClose(layer.measuredRelativeErrorAtRank, expected.error, 1e-4, "\(layer.name) measured error")
            expectClose(layer.effectiveRank, expected.effectiveRank, 1e-5, "\(layer.name) effective rank")
            for (key, r) in expected.ranks { #expect(layer.rankForEnergy[key] == .some(r), "\(layer.name) rank for \(key)") }
            expectClose(layer.deltaNorm, Double(delta.norm), 1e-5, "\(layer.name) ‖ΔW‖")
            #expect(layer.spectrumComplete)
        }
        #expect(expected.ranks == ["0.5": 1, "0.9": 2, "0.99": 4])
        // Summaries: every module has the same spectrum.
        for g in a.summary.byKind + a.summary.byCategory + a.summary.byDepth + [a.summary.overall] {
            expectClose(g.meanEnergyAtRank, expected.energy, 1e-5, "\(g.group) mean energy")
            expectClose(g.pooledEnergyAtRank, expected.energy, 1e-5, "\(g.group) pooled energy")
        }
        let kinds = a.summary.byKind.map(\.group)
        #expect(kinds == (config.family == .gpt2 ? ["qkv", "o", "up", "down"] : ["q", "k", "v", "o", "gate", "up", "down"]))
        #expect(a.summary.byCategory.map(\.group) == ["attention", "mlp"])
        #expect(a.summary.byDepth.count == config.layerCount)
        // Non-target tensors: only the final norm weight changed, by 0.01 in each of C elements.
        let norm = try #require(a.nonTarget.first { $0.name.hasSuffix("ln_f.weight") || $0.name == "model.norm.weight" })
        expectClose(norm.deltaNorm, 0.01 * Double(config.hiddenSize).squareRoot(), 1e-4, "final norm ΔT")
        for t in a.nonTarget where t.name != norm.name { #expect(t.deltaNorm == 0, "\(t.name) unchanged") }
        #expect(!a.nonTarget.contains { $0.name.contains("c_attn.weight") || $0.name.contains("q_proj.weight") })
    }

    @Test func distributedRunsMatchOneRank() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }  // the folders live until the test ends
        // Different spectra per module so a mix-up between modules would show.
        let folders = try Fixture.folders(in: scratch, Fixture.llama, spectrum: { i in [Float(3 + i), 1.5, 0.5 + Float(i) * 0.1, 0.2] })
        for method in SVDMethod.allCases {
            let options = DeltaAnalysisOptions(rank: 3, method: method, oversampling: 2, powerIterations: 2, seed: 7)
            let one = try Self.analyse(folders, options: options, ranks: 1)
            for ranks in [2, 3] {
                let many = try Self.analyse(folders, options: options, ranks: ranks)
                #expect(many.analysis.worldSize == ranks)
                #expect(Set(many.analysis.layers.map(\.ownerRank)).count == ranks, "every rank got work")
                #expect(one.analysis.layers.map(\.name) == many.analysis.layers.map(\.name))
                for (x, y) in zip(one.analysis.layers, many.analysis.layers) {
                    #expect(x.shape == y.shape)
                    #expect(x.singularValues.count == y.singularValues.count)
                    for (s, t) in zip(x.singularValues, y.singularValues) { expectClose(Double(t), Double(s), 1e-6, "\(x.name) σ") }
                    expectClose(y.energyAtRank, x.energyAtRank, 1e-6, "\(x.name) energy")
                    expectClose(y.relativeErrorAtRank, x.relativeErrorAtRank, 1e-6, "\(x.name) error")
                    expectClose(y.effectiveRank, x.effectiveRank, 1e-6, "\(x.name) effective rank")
                    expectClose(y.deltaNorm, x.deltaNorm, 1e-9, "\(x.name) ‖ΔW‖")
                    #expect(y.rankForEnergy == x.rankForEnergy)
                }
                for (x, y) in zip(one.factors, many.factors) {
                    #expect(x.path == y.path)
                    expectClose(Double((x.a - y.a).norm), 0, 1e-5, "\(x.path) A")
                    expectClose(Double((x.b - y.b).norm), 0, 1e-5, "\(x.path) B")
                }
                for (x, y) in zip(one.analysis.nonTarget, many.analysis.nonTarget) {
                    #expect(x.name == y.name)
                    expectClose(y.deltaNorm, x.deltaNorm, 1e-12, "\(x.name)")
                }
                let plan = many.analysis.plan
                #expect(plan.perRankModules.reduce(0, +) == many.analysis.layers.count)
                #expect(plan.maxOverMean >= 1 && plan.maxOverMean < 1.5)
            }
        }
    }

    @Test func factorsReproduceTheTruncation() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }  // the folders live until the test ends
        let folders = try Fixture.folders(in: scratch, Fixture.gpt2)
        let output = scratch.folder("factors")
        let R = 3
        let outcome = try Self.analyse(folders, options: DeltaAnalysisOptions(rank: R))
        let files = try DeltaAnalysisWriter.write(outcome, to: output)
        let file = try SafetensorsFile(path: files.factors)
        #expect(file.metadata["rank"] == String(R))
        #expect(file.metadata["base"] == folders.base && file.metadata["tuned"] == folders.tuned)
        #expect(file.names.count == 2 * outcome.analysis.layers.count)
        for module in HFNaming(config: folders.config).linearModules {
            let b = try file.tensor(module.path + ".lora_B"), a = try file.tensor(module.path + ".lora_A")
            #expect(b.shape == [module.outFeatures, R] && a.shape == [R, module.inFeatures])
            let delta = try #require(folders.deltas[module.path])
            let truncated = try LAPACK.svd(delta).reconstruct(rank: R)
            let product = BLAS.matmul(b, a)
            let misfit = Double((product - truncated).norm / truncated.norm)
            #expect(misfit < 1e-5, "\(module.path): ‖B·A − ΔW_R‖/‖ΔW_R‖ = \(misfit)")
            // √σ split: the factors carry equal norms per component.
            expectClose(Double(b.norm), Double(a.norm), 1e-4, "\(module.path) balanced factors")
        }
    }

    @Test func factorsAreZeroPaddedPastTheMatrixRank() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }  // the folders live until the test ends
        // R larger than min(out, in) of the k/v projections (8): padded, product still exact.
        let folders = try Fixture.folders(in: scratch, Fixture.llama)
        let outcome = try Self.analyse(folders, options: DeltaAnalysisOptions(rank: 12))
        for (layer, f) in zip(outcome.analysis.layers, outcome.factors) {
            #expect(f.b.shape == [layer.shape[0], 12] && f.a.shape == [12, layer.shape[1]])
            expectClose(layer.energyAtRank, 1, 1e-6, "\(layer.name) energy at R ≥ rank")
            expectClose(layer.measuredRelativeErrorAtRank ?? 1, 0, 1e-3, "\(layer.name) measured error")
        }
    }

    @Test func randomizedAgreesWithFullOnTheLeadingValues() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }  // the folders live until the test ends
        let config = ModelConfig(family: .llama, vocabularySize: 40, hiddenSize: 64, layerCount: 1, headCount: 4,
                                 intermediateSize: 96, maxPositions: 16)
        let decaying: [Float] = (0..<40).map { Float(pow(0.8, Double($0))) }
        let folders = try Fixture.folders(in: scratch, config, spectrum: { _ in decaying })
        let R = 6
        let full = try Self.analyse(folders, options: DeltaAnalysisOptions(rank: R))
        let randomized = try Self.analyse(folders, options: DeltaAnalysisOptions(rank: R, method: .randomized, oversampling: 6, powerIterations: 2))
        #expect(randomized.analysis.method == .randomized && randomized.analysis.oversampling == 6)
        for (f, r) in zip(full.analysis.layers, randomized.analysis.layers) {
            #expect(!r.spectrumComplete && r.singularValues.count == R + 6)
            #expect(r.effectiveRank == nil)
            for i in 0..<R { expectClose(Double(r.singularValues[i]), Double(f.singularValues[i]), 1e-3, "\(f.name) σ\(i + 1)") }
            expectClose(r.totalEnergy, f.totalEnergy, 1e-5, "\(f.name) total energy")
            expectClose(r.energyAtRank, f.energyAtRank, 1e-3, "\(f.name) energy")
            expectClose(r.relativeErrorAtRank, f.relativeErrorAtRank, 1e-3, "\(f.name) error")
            expectClose(r.measuredRelativeErrorAtRank, f.relativeErrorAtRank, 1e-3, "\(f.name) measured error")
            #expect(r.rankForEnergy["0.5"] == f.rankForEnergy["0.5"])
        }
    }

    @Test func mismatchedModelsNameTheTensor() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }  // the folders live until the test ends
        let folders = try Fixture.folders(in: scratch, Fixture.llama)
        var other = Fixture.llama
        other.intermediateSize = 32
        let wider = Transformer(config: other)
        wider.initialize(seed: 1)
        let widerPath = scratch.folder("wider")
        try HFCheckpoint.save(wider, to: widerPath)
        let error = #expect(throws: AnalysisError.self) { try HFFolderDeltaSource(base: folders.base, tuned: widerPath) }
        #expect(error?.tensor == "model.layers.0.mlp.gate_proj.weight", "\(String(describing: error))")
        #expect(error.map { "\($0)".contains("do not match") } == true)

        var deeper = Fixture.llama
        deeper.layerCount = 3
        let deep = Transformer(config: deeper)
        deep.initialize(seed: 1)
        let deepPath = scratch.folder("deeper")
        try HFCheckpoint.save(deep, to: deepPath)
        let stray = #expect(throws: AnalysisError.self) { try HFFolderDeltaSource(base: folders.base, tuned: deepPath) }
        #expect(stray?.tensor?.hasPrefix("model.layers.2.") == true, "\(String(describing: stray))")
    }

    @Test func modelPairSourceMatchesFolders() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }  // the folders live until the test ends
        let folders = try Fixture.folders(in: scratch, Fixture.gpt2)
        let base = try HFCheckpoint.load(folder: folders.base), tuned = try HFCheckpoint.load(folder: folders.tuned)
        let options = DeltaAnalysisOptions(rank: 2)
        let fromFolders = try Self.analyse(folders, options: options)
        let fromModels = try #require(try LocalCluster.run(size: 2) { comm -> DeltaAnalysisOutcome? in
            try DeltaAnalyzer.run(source: try ModelPairDeltaSource(base: base, tuned: tuned), options: options, communicator: comm)
        }[0])
        for (x, y) in zip(fromFolders.analysis.layers, fromModels.analysis.layers) {
            #expect(x.name == y.name)
            for (s, t) in zip(x.singularValues, y.singularValues) { expectClose(Double(t), Double(s), 1e-6, "\(x.name) σ") }
        }
        for (x, y) in zip(fromFolders.analysis.nonTarget, fromModels.analysis.nonTarget) {
            #expect(x.name == y.name)
            expectClose(y.deltaNorm, x.deltaNorm, 1e-9, x.name)
        }
    }

    @Test func analysisJSONHasTheSchema() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }  // the folders live until the test ends
        let folders = try Fixture.folders(in: scratch, Fixture.llama)
        let outcome = try Self.analyse(folders, options: DeltaAnalysisOptions(rank: 2))
        let output = scratch.folder("json")
        let files = try DeltaAnalysisWriter.write(outcome, to: output)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: files.analysis))) as? [String: Any])
        #expect(object["rank"] as? Int == 2)
        #expect(object["method"] as? String == "full")
        for key in ["layers", "summary", "non_target", "plan", "definitions", "timing"] { #expect(object[key] != nil, "missing \(key)") }
        let layers = try #require(object["layers"] as? [[String: Any]])
        let first = try #require(layers.first)
        #expect(first["name"] as? String == "model.layers.0.self_attn.q_proj.weight")
        #expect(first["shape"] as? [Int] == [16, 16])
        for key in ["singular_values", "energy_at_rank", "relative_error_at_rank", "effective_rank", "delta_norm", "relative_change", "svd_seconds"] {
            #expect(first[key] != nil, "layer lacks \(key)")
        }
        let ranks = try #require(first["rank_for_energy"] as? [String: Any])
        #expect(Set(ranks.keys) == ["0.5", "0.9", "0.99"])
        let plan = try #require(object["plan"] as? [String: Any])
        #expect(plan["max_over_mean"] != nil && plan["per_rank_cost"] != nil)
        let summary = try #require(object["summary"] as? [String: Any])
        #expect(summary["by_kind"] != nil && summary["by_depth"] != nil && summary["by_category"] != nil)
        // Undefined figures are written as null, not dropped.
        let text = try String(contentsOfFile: files.analysis, encoding: .utf8)
        #expect(text.contains("\"oversampling\" : null"))
        // Round trip and the completeness check a pipeline uses.
        let read = try DeltaAnalysisWriter.read(folder: output)
        #expect(read.layers.count == outcome.analysis.layers.count)
        #expect(DeltaAnalysisWriter.isComplete(folder: output, rank: 2))
        #expect(!DeltaAnalysisWriter.isComplete(folder: output, rank: 3))
        let report = try String(contentsOfFile: files.report, encoding: .utf8)
        #expect(report.contains("## By module kind") && report.contains("model.layers.1.mlp.down_proj.weight"))
    }

    @Test func zeroDeltaHasUndefinedFiguresNotNaN() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }  // the folders live until the test ends
        let folders = try Fixture.folders(in: scratch, Fixture.llama, spectrum: { _ in [] })
        let outcome = try Self.analyse(folders, options: DeltaAnalysisOptions(rank: 2))
        for l in outcome.analysis.layers {
            #expect(l.deltaNorm == 0 && l.energyAtRank == nil && l.effectiveRank == nil && l.rankForEnergy["0.9"] == .some(nil))
        }
        _ = try DeltaAnalysisWriter.json(outcome.analysis)  // encodes (no NaN)
    }
}
