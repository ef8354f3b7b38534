import ArgumentParser
import Foundation
import SubspaceCore
import SubspaceModel

/// Encoder throughput alone: the tokenizer is loaded and the text read before the clock starts, and no
/// ids are written, so the figure is comparable with HF `tokenizers`' `encode` (launch/bench-tokenizers
/// runs both). Reports wall clock and the encoding thread's own CPU time, which a busy machine does not
/// inflate the way it inflates wall clock.
struct BenchTokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize", abstract: "MB/s of BPE encoding alone (no I/O in the timed part), by wall clock and by CPU time.")

    @Option(help: ArgumentHelp("A tokenizer.json, a folder holding one, or 'bytes'.", valueName: "file"))
    var tokenizer: String
    @Option(help: ArgumentHelp("UTF-8 text to encode.", valueName: "file"))
    var text: String
    @Option(help: "Repeat the text up to at least this many megabytes (the text as it is when smaller than it).")
    var megabytes: Double = 0
    @Option(help: "Encoding threads (1: the calling thread alone, so its CPU time is the encoder's).")
    var threads: Int = 1
    @Option(help: "Timed repetitions; the figures are the fastest one's.")
    var repeats: Int = 3

    func validate() throws {
        guard threads >= 1, threads <= 1024 else { throw ValidationError("--threads must be in 1…1024, got \(threads)") }
        guard repeats >= 1, repeats <= 100 else { throw ValidationError("--repeats must be in 1…100, got \(repeats)") }
        guard megabytes.isFinite, megabytes >= 0, megabytes <= 4096 else {
            throw ValidationError("--megabytes must be in [0, 4096], got \(megabytes)")
        }
    }

    func run() throws {
        let model = try Tokenizers.load(tokenizer)
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: text)) } catch {
            throw ValidationError("--text \(text): \(FileSystemMessage.reason(error))")
        }
        guard !data.isEmpty, let once = String(validating: data, as: UTF8.self) else {
            throw ValidationError("--text \(text): empty or not valid UTF-8")
        }
        let copies = max(1, Int((megabytes * 1e6 / Double(data.count)).rounded(.up)))
        let input = copies == 1 ? once : String(repeating: once, count: copies)
        let size = Double(input.utf8.count) / 1e6
        var best = (wall: Double.infinity, cpu: Double.infinity), tokens = 0
        for _ in 0..<repeats {
            let cpu = threadSeconds(), wall = DispatchTime.now().uptimeNanoseconds
            let ids = threads == 1 ? model.encode(input, addingSpecialTokens: false) : model.encode(input, threads: threads)
            let wallSeconds = Double(DispatchTime.now().uptimeNanoseconds - wall) * 1e-9, cpuSeconds = threadSeconds() - cpu
            best = (min(best.wall, wallSeconds), min(best.cpu, cpuSeconds))
            tokens = ids.count
        }
        print(figures(["megabytes": size, "tokens": tokens, "threads": threads, "wall_s": best.wall, "mb_per_s": size / best.wall,
                       "thread_cpu_s": best.cpu, "mb_per_thread_cpu_s": threads == 1 ? size / best.cpu : Double.nan]))
    }

    /// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID).
    func threadSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
