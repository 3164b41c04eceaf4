using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Ebp.MLNet.Internal;

/// <summary>
/// The lazy output of <see cref="SaliencyTransformer.Transform"/>: nothing runs until a cursor moves. A cursor that
/// needs a saliency column reads <see cref="StageConfig.BatchSize"/> input rows ahead, runs one forward/backward pass
/// for them on a model instance rented from the transformer's pool for that pass, and serves the rows from the batch.
/// </summary>
internal sealed class SaliencyDataView : IDataView
{
    private readonly SaliencyTransformer _parent;
    private readonly IDataView _input;
    private readonly Binding _binding;

    public SaliencyDataView(SaliencyTransformer parent, IDataView input, Binding binding)
    {
        _parent = parent;
        _input = input;
        _binding = binding;
    }

    public bool CanShuffle => _input.CanShuffle;

    public DataViewSchema Schema => _binding.Output;

    public long? GetRowCount() => _input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        ArgumentNullException.ThrowIfNull(columnsNeeded);
        var needed = columnsNeeded.ToList();
        foreach (var c in needed)
            if (c.Index < 0 || c.Index >= Schema.Count || Schema[c.Index].Name != c.Name)
                throw new ArgumentOutOfRangeException(nameof(columnsNeeded), $"Column '{c.Name}' (index {c.Index}) is not a column of this data view.");
        var inputColumns = _binding.Dependencies(needed).ToList();
        return new Cursor(_parent, _binding, SingleCursor(_input, inputColumns, rand), needed);
    }

    /// <summary>
    /// One sequential input cursor. <c>GetRowCursor</c> of an ML.NET transform may split the work over threads, whose
    /// workers call every getter eagerly and end the whole cursor on the first failing row (a missing image file); a
    /// cursor set of one runs on this thread and lets the stage read, and catch, each row's values itself.
    /// </summary>
    private static DataViewRowCursor SingleCursor(IDataView input, IReadOnlyList<DataViewSchema.Column> columns, Random? rand)
    {
        var set = input.GetRowCursorSet(columns, 1, rand);
        if (set.Length == 1) return set[0];
        foreach (var c in set) c.Dispose();
        return input.GetRowCursor(columns, rand);
    }

    /// <summary>Returns one cursor: batching happens inside it.</summary>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly SaliencyTransformer _parent;
        private readonly Binding _binding;
        private readonly DataViewRowCursor _input;
        private readonly bool[] _active;
        private readonly bool _computes;
        private readonly int _capacity;

        // Batched mode.
        private readonly RowReader? _reader;
        private readonly RowInput[] _inputs = [];
        private readonly RowOutput[] _outputs = [];
        private readonly Dictionary<int, ColumnBuffer> _buffers = new();
        private readonly DataViewRowId[] _ids = [];
        private readonly ValueGetter<DataViewRowId>? _inputIdGetter;
        private readonly BatchComputer? _computer;
        private int _count;
        private int _slot = -1;
        private bool _inputDone;
        private Exception? _failure;
        private readonly IChannel? _channel; // this cursor's log messages (batches, skipped rows)

        private long _position = -1;
        private bool _disposed;

        public Cursor(SaliencyTransformer parent, Binding binding, DataViewRowCursor input, IReadOnlyList<DataViewSchema.Column> needed)
        {
            _parent = parent;
            _binding = binding;
            _input = input;
            _active = new bool[binding.Output.Count];
            foreach (var c in needed) _active[c.Index] = true;
            _computes = needed.Any(c => binding.IsAdded(c.Index));
            if (!_computes) return;

            var config = binding.Config;
            _capacity = config.BatchSize;
            bool overlay = binding.OverlayIndex >= 0 && _active[binding.OverlayIndex];
            _computer = new BatchComputer(config, overlay);
            _reader = new RowReader(input, binding);
            _inputs = new RowInput[_capacity];
            _outputs = new RowOutput[_capacity];
            for (int i = 0; i < _capacity; i++)
            {
                _inputs[i] = new RowInput(config, overlay);
                _outputs[i] = new RowOutput(config);
            }
            _ids = new DataViewRowId[_capacity];
            _inputIdGetter = input.GetIdGetter();
            _channel = parent.Log.Start();
            foreach (var c in needed)
                if (!binding.IsAdded(c.Index))
                    _buffers[c.Index] = ColumnBuffer.Create(input, binding.Input[c.Index], _capacity);
        }

        public override DataViewSchema Schema => _binding.Output;

        public override long Position => _position;

        public override long Batch => 0;

        public override bool IsColumnActive(DataViewSchema.Column column) =>
            column.Index >= 0 && column.Index < _active.Length && _active[column.Index];

        public override bool MoveNext()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_computes)
            {
                if (!_input.MoveNext()) return false;
                _position++;
                return true;
            }
            if (_slot + 1 < _count)
            {
                _slot++;
                _position++;
                return true;
            }
            if (_failure is not null)
                throw new InvalidOperationException($"The cursor stopped after an error ({_failure.Message}); create a new cursor.", _failure);
            if (_inputDone) return false;
            try
            {
                if (!FillBatch()) return false;
            }
            catch (Exception e)
            {
                // The batch is incomplete: never serve its rows.
                _count = 0;
                _slot = -1;
                _failure = e;
                throw;
            }
            _slot = 0;
            _position++;
            return true;
        }

        private bool FillBatch()
        {
            _count = 0;
            _slot = -1;
            while (_count < _capacity && _input.MoveNext())
            {
                int slot = _count++;
                long position = _position + 1 + slot;
                ColumnBuffer? imageBuffer = null;
                Exception? imageError = null, passError = null;
                string? passColumn = null;
                foreach (var (index, buffer) in _buffers)
                {
                    bool isImage = index == _binding.Image.Index && !_binding.ImageIsVector;
                    if (isImage) imageBuffer = buffer; // also the model input: read once
                    try
                    {
                        buffer.Fill(slot);
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        buffer.Clear(slot);
                        if (isImage) imageError = e;
                        else if (_binding.Config.InvalidRows == InvalidRowHandling.Skip) { passError ??= e; passColumn ??= _binding.Input[index].Name; }
                        else throw new InvalidOperationException($"Row {position}: reading column '{_binding.Input[index].Name}' failed: {e.Message}", e);
                    }
                }
                _inputIdGetter!(ref _ids[slot]);
                var input = _inputs[slot];
                if (imageBuffer is not null) _reader!.Read(input, position, (MLImage?)imageBuffer.Get(slot), imageError);
                else _reader!.Read(input, position);
                if (passError is not null && input.Error is null)
                {
                    input.Error = $"reading column '{passColumn}' failed: {passError.Message}";
                    input.ErrorCause = passError;
                }
            }
            if (_count < _capacity) _inputDone = true;
            if (_count == 0) return false;

            // The model instance is rented for this batch only: concurrent cursors compute on different instances,
            // and a cursor that is never disposed holds none.
            using (var lease = _parent.Pool.Rent())
                _computer!.Compute(lease, _inputs, _outputs, _count);
            long first = _position + 1;
            _channel?.Trace(MessageSensitivity.None, $"Batch of rows {first}–{first + _count - 1} computed.");
            for (int i = 0; i < _count; i++)
                if (_outputs[i].Error.Length > 0)
                    _channel?.Warning(MessageSensitivity.None, $"Row {first + i} skipped: {_outputs[i].Error}.");
            return true;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter()
        {
            if (!_computes) return _input.GetIdGetter();
            return (ref DataViewRowId id) =>
            {
                CheckPosition();
                id = _ids[_slot];
            };
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column))
                throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor; request it when creating the cursor.");
            var type = _binding.Output[column.Index].Type;
            if (typeof(TValue) != type.RawType)
                throw new InvalidOperationException(
                    $"Invalid TValue in GetGetter: '{typeof(TValue)}', expected type: '{type.RawType}' for column '{column.Name}' ({type}).");
            if (!_binding.IsAdded(column.Index))
            {
                if (!_computes) return _input.GetGetter<TValue>(_binding.Input[column.Index]);
                return (ValueGetter<TValue>)_buffers[column.Index].MakeGetter(CurrentSlot);
            }
            return (ValueGetter<TValue>)OutputGetters.Make(_binding, column.Index, () => _outputs[CurrentSlot()]);
        }

        private int CurrentSlot()
        {
            CheckPosition();
            return _slot;
        }

        private void CheckPosition()
        {
            if (_position < 0 || _slot < 0)
                throw new InvalidOperationException("The cursor has no current row: call MoveNext first (or it has moved past the end).");
        }

        protected override void Dispose(bool disposing)
        {
            if (_disposed) return;
            _disposed = true;
            if (disposing)
            {
                _input.Dispose();
                _channel?.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}

/// <summary>Getters of the stage's own columns over the current <see cref="RowOutput"/>.</summary>
internal static class OutputGetters
{
    public static Delegate Make(Binding binding, int index, Func<RowOutput> current)
    {
        if (index == binding.SaliencyIndex) return (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) => Fill(current().Map, ref dst));
        if (index == binding.ScoresIndex) return (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) => Fill(current().Scores, ref dst));
        if (index == binding.PredictedIndex && binding.Config.PredictedIsKey)
            return (ValueGetter<uint>)((ref uint dst) => dst = (uint)(current().Predicted + 1)); // key: class + 1, 0 = missing (skipped)
        if (index == binding.PredictedIndex) return (ValueGetter<int>)((ref int dst) => dst = current().Predicted);
        if (index == binding.TopKIndex) return (ValueGetter<VBuffer<int>>)((ref VBuffer<int> dst) => Fill(current().TopKClasses, ref dst));
        if (index == binding.OverlayIndex) return (ValueGetter<MLImage>)((ref MLImage dst) => dst = current().Overlay!);
        if (index == binding.ErrorIndex) return (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> dst) => dst = current().Error.AsMemory());
        throw new ArgumentOutOfRangeException(nameof(index), $"Column {index} is not produced by the saliency stage.");
    }

    /// <summary>Copies into the caller's buffer, reusing its arrays when they are large enough (ML.NET's getter contract).</summary>
    private static void Fill<T>(T[] src, ref VBuffer<T> dst)
    {
        var editor = VBufferEditor.Create(ref dst, src.Length);
        src.AsSpan().CopyTo(editor.Values);
        dst = editor.Commit();
    }
}
