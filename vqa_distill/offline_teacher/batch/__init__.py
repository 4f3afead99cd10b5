"""The offline Batch API and the Files API it needs: batches moving through their stages on a clock."""
