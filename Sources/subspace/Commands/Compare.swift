import ArgumentParser
import Foundation
import SubspaceAnalysis

/// `subspace compare --base DIR --teacher RUN --student NAME=RUN … --output DIR`: the teacher (full
/// fine-tuning) against LoRA students — losses, accuracy, steps to a target validation loss, and each
/// student's distance to the teacher's ΔW; writes comparison.json, report.md and report.html.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare a full fine-tuning run with LoRA students: losses, accuracy, steps to target, distance to the teacher's ΔW.")

    @Option(help: "The base model: an HF model folder.") var base: String
    @Option(help: "The full fine-tuning run folder (metrics.jsonl, final/ as an HF model folder).") var teacher: String
    @Option(name: .customLong("student"), help: "NAME=RUN: a LoRA run folder (metrics.jsonl, final/ as a PEFT adapter folder); repeatable.")
    var students: [String] = []
    @Option(name: .customLong("target-loss"), help: "Target validation loss for 'steps to target' (default: the teacher's final val_loss × 1.05).")
    var targetLoss: Double?
    @Option(help: "A delta-svd output folder whose key table and plots the report includes.") var analysis: String?
    @Option(help: "Output folder.") var output: String

    var studentRuns: [StudentRun] {
        students.compactMap { spec in
            guard let eq = spec.firstIndex(of: "=") else { return nil }
            return StudentRun(name: String(spec[..<eq]), folder: String(spec[spec.index(after: eq)...]))
        }
    }

    func validate() throws {
        guard !students.isEmpty else { throw ValidationError("give at least one --student NAME=RUN") }
        for spec in students {
            guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex, spec.index(after: eq) != spec.endIndex else {
                throw ValidationError("--student '\(spec)' is not NAME=RUN")
            }
        }
        if let targetLoss, !(targetLoss > 0) { throw ValidationError("--target-loss must be > 0") }
    }

    func run() throws {
        RankedJob.run { job in
            let start = DispatchTime.now().uptimeNanoseconds
            let options = ComparisonOptions(base: base, teacher: teacher, students: studentRuns, targetLoss: targetLoss, analysis: analysis)
            let (comparison, files) = try RunComparison.run(options, output: output, communicator: try job.watchedWorld())
            guard let files else { return }
            print("")
            print(ComparisonReport.runTable(comparison).plainText)
            job.log("target validation loss: " + (comparison.targetValLoss.map { String(format: "%.4f", $0) } ?? "none") + " (\(comparison.targetRule))")
            for path in [files.json, files.markdown, files.html] + files.plots { job.log("wrote \(path)") }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            let best = comparison.students.filter { $0.distance != nil }.min { $0.distance! < $1.distance! }
            print(figures([
                "students": comparison.students.count, "ranks": comparison.studentRanks.map(String.init).joined(separator: ","),
                "target_val_loss": comparison.targetValLoss ?? .nan,
                "teacher_final_val_loss": comparison.runs.first?.finalValLoss ?? .nan,
                "closest_student": best?.name ?? "none", "closest_distance": best?.distance ?? .nan,
                "seconds": seconds,
            ]))
            fflush(nil)
        }
    }
}
