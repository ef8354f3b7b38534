import Foundation
import Testing
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
@testable import SubspaceAnalysis

@Suite struct ComparisonTests {
    struct Setup {
        let folders: Fixture.Folders
        let teacher: String
        let students: [StudentRun]
        let analysisFolder: String
        let analysis: DeltaAnalysis
    }

    static func write(_ lines: [[String: Any]], to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let text = try lines.map { String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]), as: UTF8.self) }
            .joined(separator: "\n") + "\n"
        try text.write(toFile: (folder as NSString).appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
    }

    static func steps(_ losses: [Double]) -> [[String: Any]] {
        losses.enumerated().map { ["step": $0.offset + 1, "loss": $0.element, "lr": 1e-3, "grad_norm": 1.0, "tokens_per_s": 100.0] }
    }

    static func evaluation(_ step: Int, _ val: Double, exactMatch: Double? = nil) -> [String: Any] {
        var e: [String: Any] = ["step": step, "val_loss": val, "perplexity": exp(val)]
        if let exactMatch { e["exact_match"] = exactMatch; e["exact_match_examples"] = 8 }
        return e
    }

    /// A student adapter on q_proj and v_proj whose scale·B·A is the teacher's rank-`rank` ΔW (or zero).
    static func student(_ name: String, rank: Int, alpha: Float, zero: Bool, factors: [ModuleFactors],
                        config: ModelConfig, root: String, evaluations: [[String: Any]]) throws -> StudentRun {
        let run = (root as NSString).appendingPathComponent(name)
        let lora = try LoRAAdapters(config: LoRAConfig(rank: rank, alpha: alpha, targets: .names(["q_proj", "v_proj"])), model: config)
        if !zero {
            for a in lora.adapters {
                let f = try #require(factors.first { $0.path == a.module.path })
                var b = f.b
                b.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] /= lora.config.scale } }
                lora.setFactor(a, b: true, b)
                lora.setFactor(a, b: false, f.a)
            }
        }
        try PEFTAdapter.save(lora, model: config, to: (run as NSString).appendingPathComponent("final"))
        try write(steps([2.6, 2.4, 2.3, 2.2]) + evaluations, to: run)
        return StudentRun(name: name, folder: run)
    }

    static func setup(_ scratch: Scratch) throws -> Setup {
        let folders = try Fixture.folders(in: scratch, Fixture.llama)
        let root = scratch.folder("compare")
        let teacher = (root as NSString).appendingPathComponent("teacher")
        try FileManager.default.createDirectory(atPath: teacher, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: folders.tuned, toPath: (teacher as NSString).appendingPathComponent("final"))
        try write(steps([3.0, 2.8, 2.6, 2.4]) + [evaluation(2, 2.5, exactMatch: 0.25), evaluation(4, 2.0, exactMatch: 0.5)], to: teacher)

        func analyse(_ R: Int) throws -> DeltaAnalysisOutcome {
            try #require(try DeltaAnalyzer.run(source: try HFFolderDeltaSource(base: folders.base, tuned: folders.tuned),
                                               options: DeltaAnalysisOptions(rank: R), communicator: LocalCluster.run(size: 1) { $0 }[0]))
        }
        let r2 = try analyse(2), r4 = try analyse(4)
        let analysisFolder = (root as NSString).appendingPathComponent("delta")
        try DeltaAnalysisWriter.write(r2, to: analysisFolder)
        let students = [
            try student("svd-r4", rank: 4, alpha: 4, zero: false, factors: r4.factors, config: folders.config, root: root,
                        evaluations: [evaluation(2, 2.05, exactMatch: 0.5), evaluation(4, 2.01, exactMatch: 0.625)]),
            try student("svd-r2", rank: 2, alpha: 4, zero: false, factors: r2.factors, config: folders.config, root: root,
                        evaluations: [evaluation(2, 2.2), evaluation(4, 2.09, exactMatch: 0.375)]),
            try student("random-r2", rank: 2, alpha: 16, zero: true, factors: [], config: folders.config, root: root,
                        evaluations: [evaluation(2, 2.6), evaluation(4, 2.3, exactMatch: 0.125)]),
        ]
        return Setup(folders: folders, teacher: teacher, students: students, analysisFolder: analysisFolder, analysis: r2.analysis)
    }

    @Test func figuresAndDistances() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }  // the folders live until the test ends
        let s = try Self.setup(scratch)
        let options = ComparisonOptions(base: s.folders.base, teacher: s.teacher, students: s.students, analysis: s.analysisFolder)
        let c = try RunComparison.compare(options)
        expectClose(c.targetValLoss, 2.0 * 1.05, 1e-12, "default target")
        #expect(c.targetRule.contains("× 1.05"))
        #expect(c.studentRanks == [2, 4])
        // Teacher first, then students by rank (input order within a rank).
        #expect(c.runs.map(\.name) == ["teacher", "svd-r2", "random-r2", "svd-r4"])
        let byName = Dictionary(uniqueKeysWithValues: c.runs.map { ($0.name, $0) })
        let teacher = try #require(byName["teacher"])
        #expect(teacher.initialLoss == 3.0 && teacher.finalTrainLoss == 2.4 && teacher.finalValLoss == 2.0)
        #expect(teacher.exactMatch == 0.5 && teacher.stepsToTarget == 4 && teacher.distance == nil)
        let svd4 = try #require(byName["svd-r4"]), svd2 = try #require(byName["svd-r2"]), random = try #require(byName["random-r2"])
        #expect(svd4.stepsToTarget == 2 && svd2.stepsToTarget == 4 && random.stepsToTarget == nil)
        #expect(svd2.initialLoss == 2.6 && svd2.exactMatch == 0.375 && svd2.loraRank == 2 && svd2.loraScale == 2)
        // scale·B·A = ΔW_R exactly: the distance is the rank-R truncation error √(1 − energy).
        expectClose(svd2.distance, ExpectedFigures(Fixture.sigma, rank: 2).error, 1e-4, "svd-r2 distance")
        expectClose(svd4.distance, ExpectedFigures(Fixture.sigma, rank: 4).error, 1e-4, "svd-r4 distance")
        expectClose(svd2.cosine, ExpectedFigures(Fixture.sigma, rank: 2).energy.squareRoot(), 1e-4, "svd-r2 cosine")
        expectClose(random.distance, 1, 1e-12, "zero adapter distance")
        #expect(random.cosine == nil && random.normRatio == 0)
        #expect(svd2.adaptedModules == 2 * Fixture.llama.layerCount)
        #expect(c.distances.count == 3 * 2 * Fixture.llama.layerCount)
        for d in c.distances where d.student == "svd-r2" {
            expectClose(d.distance, ExpectedFigures(Fixture.sigma, rank: 2).error, 1e-4, "\(d.module)")
            #expect(d.kind == .q || d.kind == .v)
        }
        #expect(c.layerDistances.count == 3 * Fixture.llama.layerCount)

        // The same on two in-process ranks.
        let split = try LocalCluster.run(size: 2) { comm in try RunComparison.compare(options, communicator: comm) }
        for c2 in split {
            for (x, y) in zip(c.runs, c2.runs) {
                #expect(x.name == y.name)
                expectClose(y.distance, x.distance, 1e-12, "\(x.name) distance on 2 ranks")
            }
        }

        let output = scratch.folder("compare-out")
        let files = try ComparisonReport.write(c, to: output)
        for path in [files.json, files.markdown, files.html] + files.plots { #expect(FileManager.default.fileExists(atPath: path), "\(path)") }
        #expect(files.plots.map { ($0 as NSString).lastPathComponent }
                == ["loss_curves.svg", "distance.svg", "rank_study_loss.svg", "rank_study_distance.svg"])
        for path in files.plots {
            let problem = xmlProblem(try String(contentsOfFile: path, encoding: .utf8))
            #expect(problem == nil, "\(path): \(problem ?? "")")
        }
        let html = try String(contentsOfFile: files.html, encoding: .utf8)
        #expect(html.components(separatedBy: "<svg ").count - 1 == 4 + 3, "4 comparison plots and 3 analysis plots inline")
        #expect(!html.contains("<?xml"), "declarations stripped when inlining")
        #expect(!html.contains("src=") && !html.contains("<link") && !html.contains("<script"), "self-contained")
        #expect(html.contains("pooled energy@R"), "the analysis' key table")
        let md = try String(contentsOfFile: files.markdown, encoding: .utf8)
        #expect(md.contains("| svd-r2 | 2 |") && md.contains("not reached"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: files.json))) as? [String: Any])
        #expect(json["target_val_loss"] != nil && (json["runs"] as? [Any])?.count == 4)
    }

    @Test func givenTargetAndOneRank() throws {
        let scratch = Scratch()
        defer { withExtendedLifetime(scratch) {} }  // the folders live until the test ends
        let s = try Self.setup(scratch)
        let students = s.students.filter { $0.name.hasSuffix("r2") }
        let c = try RunComparison.compare(ComparisonOptions(base: s.folders.base, teacher: s.teacher, students: students, targetLoss: 2.25))
        #expect(c.targetValLoss == 2.25 && c.targetRule.contains("given"))
        #expect(c.runs.map(\.name) == ["teacher", "svd-r2", "random-r2"])
        #expect(c.runs.map(\.stepsToTarget) == [4, 2, nil])
        #expect(ComparisonReport.plots(c).map(\.name) == ["loss_curves.svg", "distance.svg"])
    }

    @Test func metricsParsing() throws {
        let text = """
        {"step":1,"loss":2.5,"lr":0.001}
        {"step":2,"loss":2.25}

        {"step":2,"val_loss":2.4,"perplexity":11.0,"exact_match":0.5,"exact_match_examples":4}
        {"step":3,"loss":2.0}
        {"step":4,"val_loss":2.1,"perplexity":8.2}
        """
        let m = try RunMetrics.parse(text)
        #expect(m.steps.map(\.step) == [1, 2, 3] && m.initialLoss == 2.5 && m.finalTrainLoss == 2.0)
        #expect(m.finalValLoss == 2.1 && m.finalExactMatch?.exactMatch == 0.5 && m.finalExactMatch?.step == 2)
        #expect(m.stepsToReach(2.2) == 4 && m.stepsToReach(1) == nil && m.lastStep == 4)
        #expect(throws: AnalysisError.self) { try RunMetrics.parse("{\"step\":1}\nnot json\n") }
    }

    @Test func studentFamilies() {
        #expect(ComparisonReport.family("svd-r8") == "svd")
        #expect(ComparisonReport.family("random_rank16") == "random")
        #expect(ComparisonReport.family("r8") == "r8")
        #expect(ComparisonReport.family("pissa") == "pissa")
    }
}
