// The tests are small and CPU-bound; two workers match the 2-core machines. Classes run in parallel,
// the methods of one class in sequence (MnistSourceTests changes an environment variable).
[assembly: Microsoft.VisualStudio.TestTools.UnitTesting.Parallelize(Workers = 2, Scope = Microsoft.VisualStudio.TestTools.UnitTesting.ExecutionScope.ClassLevel)]
