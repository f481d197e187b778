from django.urls import path

from training import api

urlpatterns = [
    path("models/", api.ModelVersionListView.as_view(), name="api-model-versions"),
    path("models/<str:name>/", api.ModelVersionDetailView.as_view(), name="api-model-version"),
    path("models/<str:name>/weights/", api.ModelWeightsView.as_view(), name="api-model-weights"),
    path("models/<str:name>/onnx/", api.ModelOnnxView.as_view(), name="api-model-onnx"),
    path("models/<str:name>/scores.csv", api.ModelScoresView.as_view(), name="api-model-scores"),
    path("training-jobs/", api.TrainingJobListView.as_view(), name="api-training-jobs"),
    path("training-jobs/<int:pk>/", api.TrainingJobDetailView.as_view(),
         name="api-training-job"),
    path("scoring-jobs/", api.ScoringJobListView.as_view(), name="api-scoring-jobs"),
    path("scoring-jobs/<int:pk>/", api.ScoringJobDetailView.as_view(), name="api-scoring-job"),
]
