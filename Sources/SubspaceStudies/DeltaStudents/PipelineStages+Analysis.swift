import Foundation
import SubspaceAnalysis
import SubspaceCore
import SubspaceModel
import SubspaceTraining

extension PipelineStages {
    /// ΔW = teacher − base per linear module: spectra, figures and rank-R factors (→ `output/analysis`),
    /// spread over the ranks. Skipped when a complete analysis at this rank is already there.
    func analysis(base: Done, teacher: Done, name: String = "analysis") throws -> Done {
        let folder = path(name)
        let lineage = SHA256.hex(Array("analysis \(config.analysisRank) \(config.analysisMethod) \(base.lineage) \(teacher.lineage)".utf8))
        var complete: [Int32] = [isRoot && DeltaAnalysisWriter.isComplete(folder: folder, rank: config.analysisRank) ? 1 : 0]
        try world.broadcast(&complete, root: 0)
        if try isDone(folder, lineage: lineage), complete[0] == 1 {
            log("analysis: done earlier (\(folder)), skipped")
            return Done(folder: folder, lineage: lineage)
        }
        let started = Date()
        try prepare(folder, name: "analysis", lineage: lineage)
        log("analysis: ΔW spectrum at rank \(config.analysisRank) (\(config.analysisMethod)) → \(folder)")
        let options = DeltaAnalysisOptions(rank: config.analysisRank, method: config.analysisMethod == "randomized" ? .randomized : .full)
        // The SVDs are whole-matrix LAPACK calls: give them the rank's threads, then restore the model's setting.
        let saved = BLAS.threadCount
        BLAS.threadCount = Parallel.workers
        defer { BLAS.threadCount = saved }
        // The teacher's ΔW straight from its newest checkpoint's per-rank files (a ZeRO-3 teacher is never
        // gathered); its final HF folder holds the same weights.
        let result = try DeltaAnalyzer.analyzeFolders(base: (base.folder as NSString).appendingPathComponent("final"),
                                                      tuned: teacher.folder,
                                                      output: folder, options: options, communicator: world)
        if let (outcome, _) = result {
            log("analysis: \(outcome.analysis.layers.count) modules\n" + DeltaAnalysisWriter.kindTable(outcome.analysis).markdown)
        }
        try markDone(folder, name: "analysis", lineage: lineage, seconds: Date().timeIntervalSince(started))
        try world.barrier()
        return Done(folder: folder, lineage: lineage)
    }

    /// The comparison report of teacher and students (→ `output/report`); returns report.html's path.
    func compare(base: String, teacher: String, students: [(String, String)], analysis: String, name: String = "report") throws -> String {
        let folder = path(name)
        let options = ComparisonOptions(base: base, teacher: teacher, students: students.map { StudentRun(name: $0.0, folder: $0.1) },
                                        targetLoss: config.targetLoss, analysis: analysis)
        let (_, files) = try RunComparison.run(options, output: folder, communicator: world)
        if let files, let table = try? String(contentsOfFile: files.markdown, encoding: .utf8) {
            log("comparison:\n" + table.split(separator: "\n").prefix(24).joined(separator: "\n"))
        }
        try world.barrier()
        return (folder as NSString).appendingPathComponent("report.html")
    }
}
